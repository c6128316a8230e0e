"""`modelship serve` as a real process: graceful shutdown on SIGTERM, metrics across workers."""

from __future__ import annotations

import http.client
import json
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

from modelship.transport.uvicorn.listener import port_claim
from tests.service.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _environment(artifact: Path, port: int, **env: str) -> dict[str, str]:
    """`modelship serve`'s environment: the artifact, the port and `env` as MODELSHIP_ settings,
    with no metrics directory of the test run's own."""
    environment = {
        **os.environ,
        "MODELSHIP_ARTIFACT": str(artifact),
        "MODELSHIP_PORT": str(port),
        **{f"MODELSHIP_{k.upper()}": v for k, v in env.items()},
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return environment


@contextmanager
def serve(
    artifact: Path, tmp_path: Path, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    environment = _environment(artifact, port, **env)
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


def _serve_command(artifact: Path, port: int) -> tuple[list[str], dict[str, str]]:
    environment = _environment(artifact, port, host="127.0.0.1", workers="2")
    return [sys.executable, "-m", "modelship", "serve"], environment


def _ready(port: int) -> bool:
    try:
        return get(port, "/readyz")[0] == 200
    except OSError:
        return False


def _listening_sockets(port: int) -> int:
    """Sockets listening on `port` in this network namespace (/proc/net/tcp, state 0A)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"
    )


def test_two_servers_started_together_on_one_port_do_not_share_it(
    regression_artifact: Path, tmp_path: Path
) -> None:
    """Each binds before either listens (uvicorn's shared socket never listens, the workers'
    join any `SO_REUSEPORT` group of the user): without the claim both came up and the kernel
    split the connections between them."""
    port = free_port()
    command, environment = _serve_command(regression_artifact, port)
    logs = [(tmp_path / f"server-{i}.log").open("wb") for i in range(2)]
    servers = [subprocess.Popen(command, env=environment, stdout=log, stderr=log) for log in logs]
    try:
        deadline = time.monotonic() + 60
        while not any(server.poll() is not None for server in servers):
            assert time.monotonic() < deadline, "neither server stopped"
            time.sleep(0.05)
        stopped = next(i for i, server in enumerate(servers) if server.poll() is not None)
        running = servers[1 - stopped]
        assert servers[stopped].returncode == 1
        said = (tmp_path / f"server-{stopped}.log").read_text()
        assert f"port {port} on 127.0.0.1 is taken: another modelship server" in said
        # Once both its workers listen, the server left is the only one on the port.
        while _listening_sockets(port) < 2:
            assert running.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert _ready(port)
        assert _listening_sockets(port) == 2 and running.poll() is None
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.wait(10)
        for log in logs:
            log.close()


def test_a_claimed_port_stops_serve_before_it_loads_the_model(
    regression_artifact: Path, tmp_path: Path
) -> None:
    port = free_port()
    command, environment = _serve_command(regression_artifact, port)
    with port_claim("127.0.0.1", port):
        done = subprocess.run(
            command, check=False, env=environment, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"modelship: error: port {port} on 127.0.0.1 is taken: another modelship server is "
        "starting or serving there (in this network namespace); stop it, or choose another "
        "port (--port, MODELSHIP_PORT)"
    )


def _responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """`count` HTTP responses (head, body) read off `sock`, in the order they came."""
    data = b""
    found: list[tuple[bytes, bytes]] = []
    while len(found) < count:
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(found)} responses: {data!r}"
            data += chunk
        end = data.index(b"\r\n\r\n") + 4
        length = _length(data)
        found.append((data[:end], data[end : end + length]))
        data = data[end + length :]
    assert not data, data
    return found


def _header_lines(head: bytes) -> list[bytes]:
    """A response's header lines, sorted, without those that differ per request."""
    lines = head.split(b"\r\n")[1:]
    return sorted(
        line for line in lines if line and not line.startswith((b"date:", b"x-request-id:"))
    )


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _post(path: str, body: bytes, rid: str, extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: {rid}\r\n{extra}\r\n"
    ).encode() + body


def test_an_overloaded_worker_refuses_at_the_connection(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    """`modelship serve` with one slot: a half-sent upload holds it, and the protocol answers
    everything else itself (raw 503 bytes, keep-alive, pipelined in order, probes served)."""
    with serve(regression_artifact, tmp_path, max_in_flight="1") as (_, port):
        example = get(port, "/model/examples/0")[1]
        head, csv_body = _csv_request(insurance_csv, port)
        head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        holder = socket.create_connection(("127.0.0.1", port), timeout=20)
        holder.sendall(head + csv_body[:1000])  # admitted at its headers: the one slot is taken
        time.sleep(0.3)

        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        # Two requests in one write, then a probe on the same connection.
        client.sendall(_post("/predict", example, "a") + _post("/v2/models/m/infer", b"{}", "b"))
        (native_head, native_body), (v2_head, v2_body) = _responses(client, 2)
        assert native_head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), native_head
        for expected in (b"retry-after: 1", b"content-type: application/json", b"x-request-id: a"):
            assert expected in native_head
        assert b"connection: close" not in native_head
        error = json.loads(native_body)["error"]
        assert error["status"] == 503 and error["type"] == "overloaded"
        assert "MODELSHIP_MAX_IN_FLIGHT" in error["message"]
        assert b"x-request-id: b" in v2_head
        assert "MODELSHIP_MAX_IN_FLIGHT" in json.loads(v2_body)["error"]  # the V2 shape
        client.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _responses(client, 1)[0][0].startswith(b"HTTP/1.1 200")  # probes never shed

        # One plain request per write is refused without the HTTP parser; a request with a
        # `Connection` header goes through it. Both give the same answer, and the connection
        # stays usable after either.
        for rid, extra in (("plain", ""), ("parsed", "Connection: keep-alive\r\n"), ("again", "")):
            client.sendall(_post("/predict?x=1", example, rid, extra))
            head, body = _responses(client, 1)[0]
            assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), head
            assert f"x-request-id: {rid}\r\n".encode() in head
            assert _header_lines(head) == _header_lines(native_head), head
            assert body == native_body

        # A client waiting for 100 Continue, and HTTP/1.0: refused at once, connection closed.
        for request in (
            _post("/predict", b"", "c", "Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", b"Content-Length: 50"
            ),
            _post("/predict", example, "d", version="1.0"),
        ):
            once = socket.create_connection(("127.0.0.1", port), timeout=10)
            once.sendall(request)
            answer = _read_all(once)  # ends: the server closed the connection
            once.close()
            assert answer.startswith(b"HTTP/1.1 503") and b"connection: close" in answer, answer

        holder.sendall(csv_body[1000:])
        assert _read_all(holder).startswith(b"HTTP/1.1 200")
        holder.close()
        # The slot is back as soon as the answer is complete: pipelined requests are all
        # served, in order.
        client.sendall(
            _post("/predict", example, "e")
            + b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: f\r\n\r\n"
            + _post("/predict", example, "g")
        )
        answers = _responses(client, 3)
        assert [h.split(b"\r\n")[0] for h, _ in answers] == [b"HTTP/1.1 200 OK"] * 3
        assert [h.split(b"x-request-id: ")[1][:1] for h, _ in answers] == [b"e", b"f", b"g"]
        client.close()

        time.sleep(1.2)  # the refusals' access-log line is written a second after the first
        metrics = get(port, "/metrics")[1].decode()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        assert samples[("modelship_requests_shed_total", ())] == 7
        refused = (("method", "POST"), ("route", "unmatched"), ("status", "503"))
        assert samples[("modelship_http_requests_total", refused)] == 7
    # The access log sums the refusals up (a line per second), not a line per 503.
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
    assert sum(line.get("shed", 0) for line in lines) == 7
    assert not [line for line in lines if line.get("status") == 503 and "shed" not in line]


# The fargate stack's ALB keeps an idle connection to a target this long (idle_timeout); Google's
# load balancer (600 s) and ingress-nginx (60 s) are checked against the setting's default in
# tests/infra/test_keep_alive.py, without the wait.
ALB_IDLE_SECONDS = 60


def test_a_connection_idle_longer_than_the_load_balancer_still_answers(
    regression_artifact: Path, tmp_path: Path
) -> None:
    # A proxy reuses its idle connection up to its own timeout: if the service closed it first,
    # the next request on it would fail, and the proxy's client would get a 502.
    with (
        serve(regression_artifact, tmp_path) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        request = f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        sock.sendall(request)
        assert _responses(sock, 1)[0][0].startswith(b"HTTP/1.1 200")
        time.sleep(ALB_IDLE_SECONDS + 5)
        sock.sendall(request)
        head, _ = _responses(sock, 1)[0]
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"connection: close" not in head.lower()
