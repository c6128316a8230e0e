"""Admission by expected wait, on `modelship serve` as a real process: requests that pile up
while the worker is stopped (as a CPU quota stops it for the rest of its CFS period) are all
served when the worker can work them off within `MODELSHIP_SHED_WAIT_MS`, and the excess is
refused at once when it cannot."""

from __future__ import annotations

import http.client
import os
import selectors
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.service.transport.uvicorn.test_serve_process import _post, get, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BURST = 64  # twice the fixed limit of 32 in flight the wait budget replaced


@contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """The server process stopped (SIGSTOP) for the block, then continued."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _burst(pid: int, port: int, example: bytes, count: int) -> list[tuple[int, float]]:
    """`count` requests, one per connection, all sent while the server is stopped: when it
    continues they are all waiting at once. Each answer's status and its time after the
    server continued."""
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    try:
        time.sleep(0.5)  # accepted by the server: only the requests wait for it
        with _stopped(pid):
            for i, client in enumerate(clients):
                client.sendall(_post("/predict", example, f"r{i}", "Connection: close\r\n"))
            time.sleep(0.2)
        resumed = time.monotonic()
        answers: dict[socket.socket, bytes] = {client: b"" for client in clients}
        done: list[tuple[int, float]] = []
        with selectors.DefaultSelector() as selector:
            for client in clients:
                selector.register(client, selectors.EVENT_READ)
            deadline = resumed + 30
            while len(done) < count and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=1):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    chunk = ready.recv(65536)
                    if chunk:
                        answers[ready] += chunk
                        continue
                    selector.unregister(ready)  # closed by the server: the answer is whole
                    status = int(answers[ready].split(b" ", 2)[1])
                    done.append((status, time.monotonic() - resumed))
        assert len(done) == count, f"{count - len(done)} requests had no answer"
        return done
    finally:
        for client in clients:
            client.close()


def _warm_up(port: int, example: bytes) -> None:
    """Requests one after another for a while: the worker measures its completion rate over
    about a second of wall clock."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    until = time.monotonic() + 1.5
    try:
        while time.monotonic() < until:
            connection.request("POST", "/predict", example, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
    finally:
        connection.close()


def test_a_pile_up_the_worker_can_work_off_is_served_and_overload_is_shed_fast(
    regression_artifact: Path, tmp_path: Path
) -> None:
    # A budget that fits the pile-up at any rate above 320 requests/s (the server measures its
    # own; a busy test machine may make it slow).
    with serve(regression_artifact, tmp_path, shed_wait_ms="200") as (process, port):
        example = get(port, "/model/examples/0")[1]
        _warm_up(port, example)
        statuses = [status for status, _ in _burst(process.pid, port, example, BURST)]
        # More than 32 at once, a few ms of work between them: all served.
        assert statuses.count(200) == BURST, f"{statuses.count(503)} of {BURST} shed"

    # A budget no queue fits in: beyond the 32 always admitted, the rest is refused at once.
    with serve(regression_artifact, tmp_path, shed_wait_ms="0.01") as (process, port):
        example = get(port, "/model/examples/0")[1]
        _warm_up(port, example)
        answers = _burst(process.pid, port, example, BURST * 4)
        served = [at for status, at in answers if status == 200]
        shed = [at for status, at in answers if status == 503]
        assert len(served) + len(shed) == BURST * 4
        # (32 per event-loop turn: on a busy machine the server may read the pile in two.)
        assert len(served) >= 32 and len(shed) >= 2 * BURST, len(served)
        assert max(shed) < 1.0, max(shed)  # answered in the turn that read them
