"""Real S3 and GCS protocol servers on 127.0.0.1 (moto in server mode, gcp-storage-emulator)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import httpx

BUCKET = "modelship-test-models"


def s3_client(env: dict[str, str]) -> Any:
    """A boto3 S3 client for the server `s3_server` yielded `env` for."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - moto accepts any key
    )


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """Yields the environment that points boto3 at the server (as a real deployment's would)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # Moto keeps its state per process, not per server: start every server from an empty account.
    httpx.post(f"{env['AWS_ENDPOINT_URL']}/moto-api/reset").raise_for_status()
    s3_client(env).create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


@contextlib.contextmanager
def gcs_server() -> Iterator[dict[str, str]]:
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    host, port = server._api._httpd.server_address  # the emulator's only handle on its port
    try:
        yield {"STORAGE_EMULATOR_HOST": f"http://{host}:{port}", "GOOGLE_CLOUD_PROJECT": "test"}
    finally:
        server.stop()
