"""The open-loop generator against a server of known speed: latency counts from each request's
due time, so a queue shows up in p99 (a closed loop would wait and report the service time)."""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from modelship.build.capacity.load import USER_SECONDS, http_request
from modelship.build.capacity.run import LoadGenerator

SERVICE_SECONDS = 0.04  # one request at a time: at most 25 a second


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the generator expects
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:  # one at a time, whatever the number of connections
            time.sleep(SERVICE_SECONDS)
        body = b'{"prediction": 1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.slow
def test_a_queue_shows_in_p99_and_the_schedule_is_kept(port: int) -> None:
    request = http_request("127.0.0.1", port, "/predict", b"{}")
    generator = LoadGenerator(port, [request], set(os.sched_getaffinity(0)))
    try:
        under = generator.step(rate=10, seconds=2, timeout=5)
        over = generator.step(rate=50, seconds=2, timeout=10)
    finally:
        generator.close()
    # Below the server's 25/s: each request waits for its own service only.
    assert under["ok"] == 20 and not under["errors"]
    assert SERVICE_SECONDS * 1000 <= under["p99_ms"] < 4 * SERVICE_SECONDS * 1000
    # Twice over it: 100 requests sent on time (open loop) while the server does 25/s, so the
    # last ones wait about two seconds behind the queue, and p99 says so.
    assert over["sent"] == 100 and over["sent_seconds"] < 2.2
    assert over["ok"] == 100 and not over["errors"]
    assert over["p99_ms"] > 1500
    assert over["connections"] > 1  # the backlog took more connections, as users would


class _Recording(BaseHTTPRequestHandler):
    """Answers at once and records which connection (client port) each request came on."""

    protocol_version = "HTTP/1.1"
    arrivals: ClassVar[list[tuple[int, float]]] = []

    def do_POST(self) -> None:
        self.arrivals.append((self.client_address[1], time.monotonic()))
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.slow
def test_requests_are_spread_over_warm_connections_as_users_send_them() -> None:
    """At 40/s the pool is opened to 40 * USER_SECONDS = 10 connections before the step, and
    the one idle longest goes next: each carries a request about every 250 ms (reusing the one
    just freed would send all 80 on one connection, and a server's pause would reach it as a
    trickle of new connections instead of a burst on warm ones)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    generator = LoadGenerator(
        port, [http_request("127.0.0.1", port, "/predict", b"{}")], set(os.sched_getaffinity(0))
    )
    try:
        load = generator.step(rate=40, seconds=2, timeout=5)
    finally:
        generator.close()
        server.shutdown()
    assert load["ok"] == 80 and not load["errors"]
    by_connection: dict[int, list[float]] = {}
    for client_port, at in _Recording.arrivals:
        by_connection.setdefault(client_port, []).append(at)
    assert len(by_connection) == math.ceil(40 * USER_SECONDS) == load["connections"]
    gaps = [b - a for times in by_connection.values() for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.8 * USER_SECONDS
