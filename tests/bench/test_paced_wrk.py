"""bench/capacity.py's independent check: wrk paced to a schedule sends at the rate asked,
evenly (not in bursts, not faster when answers come back quickly), and fails a step on what
fails the generator's: non-2xx answers, and a server too slow to keep the schedule."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.capacity import PacedWrk
from tests.tools import require

RATE, SECONDS = 200.0, 2.0


@contextmanager
def _server(status: int = 200, pause: float = 0.0) -> Iterator[tuple[str, list[float]]]:
    """A local HTTP server answering every POST with `status` after `pause` seconds; yields
    its URL and the arrival time of each request."""
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrivals.append(time.monotonic())
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(pause)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            """wrk drops its connections when its time is up: nothing to report."""

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", arrivals
    finally:
        server.shutdown()
        server.server_close()


def _step(url: str) -> dict[str, Any]:
    require("wrk")
    wrk = PacedWrk(url, [b'{"x": 1}', b'{"x": 2}'], min(os.sched_getaffinity(0)))
    return wrk.step(RATE, SECONDS, 2.0)


def test_requests_leave_at_the_rate_asked_and_evenly() -> None:
    with _server() as (url, arrivals):
        load = _step(url)
    assert load["errors"] == {}
    assert abs(len(arrivals) - RATE * SECONDS) <= 0.05 * RATE * SECONDS
    # Paced, not closed-loop: in no 100 ms window more than 1.5 times the window's share.
    start = arrivals[0]
    windows = Counter(int((at - start) / 0.1) for at in arrivals)
    assert max(windows.values()) <= 1.5 * RATE * 0.1


def test_non_2xx_answers_fail_the_step() -> None:
    with _server(status=503) as (url, _):
        load = _step(url)
    assert load["errors"]["non-2xx answers"] >= 0.95 * RATE * SECONDS


def test_a_server_that_cannot_keep_the_schedule_fails_the_step() -> None:
    """Answers slower than a connection's turn hold the sends back (at 200/s, 50 connections
    each send every 250 ms; each answer takes 500 ms): the step is behind its schedule."""
    with _server(pause=0.5) as (url, _):
        load = _step(url)
    assert "behind its schedule (answered of due)" in load["errors"]
