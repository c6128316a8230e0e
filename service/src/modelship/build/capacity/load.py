"""An open-loop load generator: requests leave on a fixed schedule whatever the server does.

A closed-loop tool (wrk, a pool of clients each waiting for its answer) slows down with the
server and so never sees the queue a real stream of users builds: coordinated omission. Here
request i of a step is due at `start + i / rate`; it goes out on the keep-alive connection idle
longest, or a new one, or (past the connection cap) waits in a backlog, and its latency is
counted from its due time, so every wait it suffers is in the figure.

Requests are spread over many warm connections, each carrying about one request per
USER_SECONDS, as independent users (or the clients behind a passthrough load balancer) send
them: before a step the pool is opened to rate * USER_SECONDS connections, and the connection
idle longest goes next. Reusing the connection just freed instead kept the pool small; when
the server paused, the requests due meanwhile opened new connections and waited in its accept
queue, which it drains a batch per loop turn, so the burst reached it spread out. On warm
connections the whole burst is readable at once when the server resumes, as it is under real
traffic, and its admission judges it all in one turn (docs/capacity.md#measured).

Plain asyncio and a small HTTP/1.1 answer reader (status, Content-Length, Connection): uvloop
and httptools belong to the server's uvicorn adapter alone (the import contracts), and the
generator has a core of its own, so their speed is not needed.

It runs as its own process (`python -m modelship.build.capacity.load`), pinned to a core the
server does not use, so its work never competes with the server's quota; it reports its own
send lag (how late its timer fired against the schedule) so a run can tell when the generator
itself was late. Steps arrive as JSON lines on stdin, results leave as JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

MAX_CONNECTIONS = 512
USER_SECONDS = 0.25
clock = time.perf_counter


@dataclass
class Target:
    host: str
    port: int
    requests: list[bytes]  # whole HTTP requests, sent in turn


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    outstanding: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight (no pipelining)."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.body_left: int | None = None  # bytes of the current answer's body still to come
        self.status = 0
        self.keep_alive = True
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.body_left is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._head(bytes(self.buffer[:end])):
                return
            del self.buffer[: end + 4]
        assert self.body_left is not None
        if len(self.buffer) < self.body_left:
            return
        del self.buffer[: self.body_left]
        self.body_left = None
        self.pool.answered(self, self.status, self.keep_alive)

    def _head(self, head: bytes) -> bool:
        """Read an answer's status line and headers; False (and the connection dropped) when
        it is not an HTTP/1.1 answer with a Content-Length."""
        lines = head.split(b"\r\n")
        try:
            self.status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            self.pool.failed(self, "bad answer")
            return False
        length = None
        self.keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.keep_alive = False
        if length is None:
            self.pool.failed(self, "answer without Content-Length")
            return False
        self.body_left = length
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)


class _Pool:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.loop = asyncio.get_running_loop()
        self.idle: deque[_Connection] = deque()  # the one idle longest on the left
        self.busy: set[_Connection] = set()
        self.opening = 0
        self.backlog: deque[float] = deque()
        self.tally = Tally()
        self.next_request = 0

    def _request(self) -> bytes:
        self.next_request = (self.next_request + 1) % len(self.target.requests)
        return self.target.requests[self.next_request]

    def dispatch(self, due: float) -> None:
        self.tally.outstanding += 1
        if self.idle:
            connection = self.idle.popleft()
            self.busy.add(connection)
            connection.send(self._request(), due)
        elif len(self.busy) + len(self.idle) + self.opening < MAX_CONNECTIONS:
            self.opening += 1
            self.loop.create_task(self._open(due))
        else:
            self.backlog.append(due)

    async def warm(self, count: int) -> None:
        """Open idle connections until the pool holds `count`."""
        missing = count - len(self.idle) - len(self.busy) - self.opening
        if missing <= 0:
            return
        opened = await asyncio.gather(
            *(self._connect() for _ in range(missing)), return_exceptions=True
        )
        # One that failed is not retried here: dispatch opens connections as it needs them.
        self.idle.extend(c for c in opened if not isinstance(c, BaseException))

    async def _connect(self) -> _Connection:
        _, connection = await self.loop.create_connection(
            lambda: _Connection(self), self.target.host, self.target.port
        )
        return connection

    async def _open(self, due: float) -> None:
        try:
            connection = await self._connect()
        except OSError:
            self.opening -= 1
            self._finish(due, None, "connect failed")
            return
        self.opening -= 1
        self.busy.add(connection)
        connection.send(self._request(), due)

    def _finish(self, due: float, latency: float | None, error: str | None) -> None:
        self.tally.outstanding -= 1
        if error is None and latency is not None:
            self.tally.latencies.append(latency)
        else:
            self.tally.error(error or "error")

    def answered(self, connection: _Connection, status: int, keep_alive: bool) -> None:
        now = clock()
        error = None if status == 200 else f"HTTP {status}"
        self._finish(connection.due, now - connection.due, error)
        if not keep_alive:  # the server closes it (as it does when it sheds load)
            self.busy.discard(connection)
            if connection.transport is not None:
                connection.transport.close()
            if self.backlog:
                self.tally.outstanding -= 1  # counted when it was queued
                self.dispatch(self.backlog.popleft())
        elif self.backlog:
            connection.send(self._request(), self.backlog.popleft())
        else:
            self.busy.discard(connection)
            self.idle.append(connection)

    def failed(self, connection: _Connection, kind: str) -> None:
        if connection in self.busy:
            self.busy.discard(connection)
            self._finish(connection.due, None, kind)
        if connection.transport is not None:
            connection.transport.abort()

    def lost(self, connection: _Connection) -> None:
        if connection in self.busy:
            self.busy.discard(connection)
            self._finish(connection.due, None, "connection closed")
            if self.backlog:  # keep the schedule: the waiting request takes a new connection
                self.tally.outstanding -= 1
                self.dispatch(self.backlog.popleft())
        elif connection in self.idle:
            self.idle.remove(connection)

    def abandon(self) -> int:
        """Close every connection still waiting for an answer; how many requests that drops."""
        dropped = self.tally.outstanding
        for connection in list(self.busy):
            self.busy.discard(connection)
            if connection.transport is not None:
                connection.transport.abort()
        self.backlog.clear()
        self.tally.outstanding = 0
        return dropped


def connections_for(rate: float) -> int:
    """The pool a step at `rate` warms: a connection per USER_SECONDS of its requests, from 1
    to MAX_CONNECTIONS."""
    return min(MAX_CONNECTIONS, max(1, math.ceil(rate * USER_SECONDS)))


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_step(pool: _Pool, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
    """Send `rate` requests a second for `seconds` on schedule; wait up to `timeout` for the
    last answers (what is still unanswered then counts as an error)."""
    await pool.warm(connections_for(rate))
    pool.tally = Tally()
    count = max(1, round(rate * seconds))
    interval = 1.0 / rate
    start = clock() + 0.01
    sent = 0
    while sent < count:
        now = clock()
        while sent < count and start + sent * interval <= now:
            due = start + sent * interval
            pool.tally.lags.append(now - due)
            pool.dispatch(due)
            sent += 1
        if sent < count:
            await asyncio.sleep(max(0.0, start + sent * interval - clock()))
    sent_seconds = clock() - start
    deadline = clock() + timeout
    while pool.tally.outstanding > 0 and clock() < deadline:
        await asyncio.sleep(0.005)
    tally = pool.tally
    unanswered = pool.abandon()
    if unanswered:
        tally.errors["no answer within timeout"] = unanswered
    return {
        "rate": rate,
        "sent": sent,
        "sent_seconds": round(sent_seconds, 3),
        "ok": len(tally.latencies),
        "errors": tally.errors,
        "p50_ms": round(_percentile(tally.latencies, 0.50) * 1000, 3),
        "p99_ms": round(_percentile(tally.latencies, 0.99) * 1000, 3),
        "max_ms": round(max(tally.latencies, default=0.0) * 1000, 3),
        "lag_p99_ms": round(_percentile(tally.lags, 0.99) * 1000, 3),
        "lag_max_ms": round(max(tally.lags, default=0.0) * 1000, 3),
        "connections": len(pool.idle) + len(pool.busy),
    }


async def _serve(lines: asyncio.StreamReader) -> None:
    setup = json.loads(await lines.readline())
    target = Target(
        setup["host"], setup["port"], [request.encode("latin-1") for request in setup["requests"]]
    )
    pool = _Pool(target)
    while line := await lines.readline():
        step = json.loads(line)
        result = await run_step(pool, step["rate"], step["seconds"], step["timeout"])
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**28)  # the setup line carries every request body
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await _serve(reader)


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """One keep-alive POST of a JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


if __name__ == "__main__":
    asyncio.run(_main())
