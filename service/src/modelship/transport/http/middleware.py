"""The one ASGI middleware in front of the app: request id, API key, body size, admission
(bounded requests in flight), request metrics and the access log.

One middleware instead of one per concern: each layer of ASGI middleware costs a coroutine
call, a closure around `send` and a pass over the headers on every request, which the profiler
found on the single-row hot path. Here the headers are read once and every refusal (401, 413,
503) is answered from here, in the shape of the request's protocol
(`modelship.transport.http.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelship.errors import BodyTooLarge, ModelshipError, Overloaded
from modelship.serving import telemetry
from modelship.serving.dataplane import DataPlane
from modelship.serving.rollout import ROUTE_KEY_HEADER
from modelship.transport.admission import ADMITTED, REQUEST_ID_HEADER
from modelship.transport.http.auth import KeyCheck, is_open
from modelship.transport.http.errors import is_v2, render
from modelship.transport.http.logging import access_line, fast_handler, request_id
from modelship.transport.http.routes.predict import PATH as RECORD_PATH
from modelship.transport.http.routes.predict import RecordEndpoint

ROUTE_KEY = ROUTE_KEY_HEADER.lower().encode()
VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")
# Never refused for load: the probes (a shed probe would take a busy pod out of service, or
# restart it) and /metrics (the autoscaler must see the pressure).
NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
access_log = logging.getLogger("modelship.access")


def never_shed(path: str) -> bool:
    return path in NEVER_SHED or (path.startswith("/v2/models/") and path.endswith("/ready"))


class _Refusal:
    """A refusal rendered once (body and headers are the same every time), sent from here."""

    def __init__(self, path: str, error: ModelshipError, close: bool = False) -> None:
        response = render(path, error)
        self.status = response.status_code
        self.headers = list(response.raw_headers)
        if close:  # the rest of the body is not read: the connection cannot be reused
            self.headers.append((b"connection", b"close"))
        self.body = bytes(response.body)

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})

    def raw(self, keep_alive: bool) -> tuple[bytes, bytes]:
        """(the header lines, ending with the blank line; the body) for writing to a socket."""
        lines = [b"%s: %s\r\n" % (name, value) for name, value in self.headers]
        if not keep_alive:
            lines.append(b"connection: close\r\n")
        return b"".join(lines) + b"\r\n", self.body


class _Refusals:
    """The native and the V2 rendering of one error."""

    def __init__(self, error: ModelshipError, close: bool = False) -> None:
        self.native = _Refusal("/", error, close)
        self.v2 = _Refusal("/v2/", error, close)

    def of(self, path: str) -> _Refusal:
        return self.v2 if is_v2(path) else self.native


def overloaded_refusals(dataplane: DataPlane) -> _Refusals:
    """The 503 of a worker that is `full`."""
    return _Refusals(Overloaded(dataplane.settings.shed_wait_ms, dataplane.max_in_flight))


def new_request_id(supplied: bytes | None) -> bytes:
    """The client's request id when it is a valid one, else a fresh one."""
    if supplied is not None and VALID_REQUEST_ID.match(supplied):
        return supplied
    return _FRESH_IDS.next()


class _RandomIds:
    """Fresh request ids of 16 random bytes (32 hex digits), read from the OS `BATCH` ids at a
    time: one system call per request was in the single-row profile (py-spy,
    docs/benchmarks.md#single-row-cpu). A forked worker drops the ids its parent read, so no
    two processes hand out the same ones."""

    BATCH = 256

    def __init__(self) -> None:
        self._hex = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.drop)

    def drop(self) -> None:
        self._hex, self._at = b"", 0

    def next(self) -> bytes:
        if self._at >= len(self._hex):
            self._hex, self._at = os.urandom(16 * self.BATCH).hex().encode(), 0
        at = self._at
        self._at = at + 32
        return self._hex[at : at + 32]


_FRESH_IDS = _RandomIds()


class HttpAdmission:
    """The admission a server adapter asks (`modelship.transport.admission.Admission`): the data
    plane's slots, this app's never-shed paths, and its 503 rendered once per protocol and
    keep-alive, so a refusal at the connection is the same bytes the middleware sends."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.slots = dataplane
        refusals = overloaded_refusals(dataplane)
        self._rendered = {
            (v2, keep): refusals.of("/v2/" if v2 else "/").raw(keep_alive=keep)
            for v2 in (False, True)
            for keep in (False, True)
        }
        self.metrics = dataplane.settings.metrics
        self.log = dataplane.settings.access_log

    # The module's functions themselves: asked per request, so no wrapper call on the way.
    never_shed = staticmethod(never_shed)
    request_id = staticmethod(new_request_id)

    def refusal(self, path: str, keep_alive: bool) -> tuple[bytes, bytes]:
        return self._rendered[(is_v2(path), keep_alive)]

    def refused(self, by_method: Mapping[str, int], seconds: float) -> None:
        """`modelship_requests_shed_total`, `modelship_http_requests_total` (status 503, route
        `unmatched`, as the middleware counts its own refusals) and one access-log line."""
        count = sum(by_method.values())
        if self.metrics:
            telemetry.SHED.inc(count)
            for method, n in by_method.items():
                telemetry.request_metrics(method, "unmatched", 503).count.inc(n)
        if self.log:
            access_log.warning(
                f"shed {count} requests (503 overloaded) in the last {seconds:.1f} s",
                extra={"status": 503, "shed": count, "seconds": round(seconds, 3)},
            )


def _read_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes, bytes, bytes | None, str | None]:
    """(request id, Content-Length, API key supplied, routing key) in one pass over the headers."""
    rid = b""
    length = b""
    supplied: bytes | None = None
    route_key: str | None = None
    for name, value in headers:
        if name == b"content-length":
            length = value
        elif name == b"x-api-key":
            supplied = value.strip()
        elif name == b"authorization" and supplied is None:
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                supplied = token.strip()
        elif name == REQUEST_ID_HEADER:
            rid = value
        elif name == ROUTE_KEY and route_key is None:
            route_key = value.decode("latin-1")
    return new_request_id(rid or None), length, supplied, route_key


class ServingMiddleware:
    """Pure ASGI middleware, outermost. Admission (`DataPlane.full`): beyond what a worker
    admits it answers 503 with Retry-After at once, which is cheap enough that an
    overloaded worker still answers every client quickly."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        dataplane: DataPlane,
        key: bytes | None,
        max_body_bytes: int,
        metrics: bool,
        log_requests: bool,
    ) -> None:
        self.app = app
        self.dataplane = dataplane
        self.key = KeyCheck(key) if key is not None else None
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.log_requests = log_requests
        self._overloaded = overloaded_refusals(dataplane)
        self._too_large = _Refusals(BodyTooLarge(max_body_bytes), close=True)
        self._record_endpoint = RecordEndpoint(dataplane)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid, length, supplied, route_key = _read_headers(scope["headers"])
        token = request_id.set(rid.decode())
        status = 500
        path: str = scope["path"]
        method: str = scope["method"]
        # POST /predict, the hot path, is answered by its endpoint here, not through the app.
        endpoint = self._record_endpoint if path == RECORD_PATH and method == "POST" else None
        template = ""  # the route's template, when `endpoint` answered

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, rid)]
            await send(message)

        try:
            if never_shed(path):
                await self.app(scope, receive, send_with_id)
            elif (
                self.key is not None
                and not is_open(path)
                and (refusal := self.key.refusal(supplied))
            ):
                await _Refusal(path, refusal).send(send_with_id)
            elif length.isdigit() and int(length) > self.max_body_bytes:
                await self._too_large.of(path).send(send_with_id)
            elif ADMITTED in scope or self.dataplane.admit():
                # The slot is taken by the protocol (which gives it back), or here, now.
                taken_here = ADMITTED not in scope
                try:
                    if taken_here:
                        # Let every request that arrived in this turn of the event loop be
                        # counted before any runs: inline predictions never yield, so without
                        # this turn the count would never pass 1 and nothing would be shed.
                        await asyncio.sleep(0)
                    if endpoint is not None:
                        template = RECORD_PATH
                        status = await endpoint(
                            scope, self._counting(receive), send, rid, route_key
                        )
                    else:
                        await self.app(scope, self._counting(receive), send_with_id)
                finally:
                    if taken_here:
                        self.dataplane.release()
            else:
                await self._overloaded.of(path).send(send_with_id)
        finally:
            self._record(scope, template, status, time.perf_counter() - start)
            request_id.reset(token)

    def _counting(self, receive: Receive) -> Receive:
        """`receive`, refusing a body (sent without Content-Length) once it passes the limit."""
        received = 0
        limit = self.max_body_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return counting_receive

    def _record(self, scope: Scope, template: str, status: int, elapsed: float) -> None:
        """The request's metrics and access line; `template` is its route's, or "" for the
        route the app matched."""
        method: str = scope["method"]
        path: str = scope["path"]
        if not template:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
        if self.metrics:
            telemetry.request_metrics(method, template, status).record(elapsed)
        if self.log_requests and access_log.isEnabledFor(logging.INFO):
            fields = {
                "method": method,
                "path": path,
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": (scope.get("client") or ("", 0))[0],
            }
            handler = fast_handler(access_log)
            if handler is not None:
                handler.write_line(access_line(fields))
            else:  # logging configured some other way: go through it
                access_log.info(f"{method} {path} {status}", extra=fields)
