"""`modelship serve` as a real process: graceful shutdown on SIGTERM, metrics across workers."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextmanager
def serve(
    artifact: Path, tmp_path: Path, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    environment = {
        **os.environ,
        "MODELSHIP_ARTIFACT": str(artifact),
        "MODELSHIP_PORT": str(port),
        **{f"MODELSHIP_{k.upper()}": v for k, v in env.items()},
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelship", "serve"], env=environment, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "server.log").read_text())
            time.sleep(0.05)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def _csv_request(insurance_csv: Path, port: int) -> tuple[bytes, bytes]:
    body = insurance_csv.read_bytes()
    head = (
        f"POST /predict/csv HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: in-flight\r\n\r\n"
    ).encode()
    return head, body


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_lets_the_request_in_flight_finish(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    with serve(regression_artifact, tmp_path, shutdown_grace_seconds="20") as (process, port):
        head, body = _csv_request(insurance_csv, port)
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(head + body[: len(body) // 2])  # the request is now in flight
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the server quit with a request in flight"
        with pytest.raises(ConnectionRefusedError):  # new connections are no longer accepted
            get(port, "/healthz")
        sock.sendall(body[len(body) // 2 :])
        response = _read_all(sock)
        sock.close()
        assert response.startswith(b"HTTP/1.1 200"), response[:300]
        assert b"x-request-id: in-flight" in response
        assert b"x-modelship-rows: 1338" in response
        assert b"age,sex,bmi,children,smoker,region,charges,predicted_charges" in response
        # uvicorn re-raises the signal once drained, so the exit status is "killed by SIGTERM".
        assert process.wait(15) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 15


def test_grace_period_bounds_the_wait(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    with serve(regression_artifact, tmp_path, shutdown_grace_seconds="1") as (process, port):
        head, body = _csv_request(insurance_csv, port)
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(head + body[:100])  # ... and the rest never comes
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        waited = time.monotonic() - started
        sock.close()
        assert 0.8 < waited < 8


def test_metrics_add_up_across_two_workers(regression_artifact: Path, tmp_path: Path) -> None:
    with serve(regression_artifact, tmp_path, workers="2") as (_, port):
        example = get(port, "/model/examples/0")[1]
        pids = set()
        for _ in range(40):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request(
                "POST", "/predict", body=example, headers={"Content-Type": "application/json"}
            )
            assert connection.getresponse().status == 200
            connection.close()
        for _ in range(10):
            status, text = get(port, "/metrics")
            assert status == 200
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text.decode())
                for s in family.samples
            }
            pids.add(samples.get(("process_pid", ())))
            assert samples[("modelship_predictions_total", ())] == 40
            key = (
                "modelship_http_requests_total",
                (("method", "POST"), ("route", "/predict"), ("status", "200")),
            )
            assert samples[key] == 40
