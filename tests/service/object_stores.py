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
    from gcp_storage_emulator.handlers import objects
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    host, port = server._api._httpd.server_address  # the emulator's only handle on its port
    upload = objects._multipart_upload
    objects._multipart_upload = _create_only(upload)
    try:
        yield {"STORAGE_EMULATOR_HOST": f"http://{host}:{port}", "GOOGLE_CLOUD_PROJECT": "test"}
    finally:
        objects._multipart_upload = upload
        server.stop()


def _create_only(upload: Any) -> Any:
    """The emulator's one-request upload, refusing `ifGenerationMatch=0` (create only) with 412
    when the object exists, as GCS does; the emulator itself ignores the precondition."""
    from http import HTTPStatus

    from gcp_storage_emulator.exceptions import NotFound

    def multipart(request: Any, response: Any, storage: Any) -> Any:
        if request.query.get("ifGenerationMatch") == ["0"]:
            name = request.query.get("name", [request.data["meta"].get("name")])[0]
            try:
                storage.get_file_obj(request.params["bucket_name"], name)
            except NotFound:
                pass
            else:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-"
                            "conditions you specified did not hold.",
                        }
                    }
                )
                return None
        return upload(request, response, storage)

    return multipart


@contextlib.contextmanager
def lose_first_answer(backend: Any) -> Iterator[list[str]]:
    """The first create-only write through `backend` (an `S3Backend` or a `GcsBackend`) reaches
    the store, but its answer is lost: the client sees a dropped connection and its SDK retries
    the write, as it would after a real network fault. Yields the URLs whose answer was lost."""
    lost: list[str] = []
    if hasattr(backend.client, "meta"):  # boto3
        from botocore.exceptions import ConnectionClosedError

        def send_then_drop(request: Any, **_: Any) -> None:
            if lost or request.method != "PUT" or "If-None-Match" not in request.headers:
                return
            body = request.body.read() if hasattr(request.body, "read") else request.body
            if hasattr(request.body, "seek"):
                request.body.seek(0)
            headers = {
                k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
            }
            httpx.put(request.url, headers=headers, content=body).raise_for_status()
            lost.append(request.url)
            raise ConnectionClosedError(endpoint_url=request.url)

        event = "before-send.s3.PutObject"
        backend.client.meta.events.register(event, send_then_drop)
        try:
            yield lost
        finally:
            backend.client.meta.events.unregister(event, send_then_drop)
        return
    import requests

    session = backend.client._http
    send = session.request

    def request_then_drop(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = send(method, url, *args, **kwargs)
        if not lost and method == "POST" and "ifGenerationMatch=0" in url:
            response.raise_for_status()
            lost.append(url)
            raise requests.exceptions.ConnectionError("connection dropped before the answer")
        return response

    session.request = request_then_drop
    try:
        yield lost
    finally:
        session.request = send
