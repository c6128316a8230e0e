"""uvicorn's HTTP protocol with admission at the connection: an overloaded worker answers 503
straight onto the socket, without an ASGI task.

Under overload a refusal that goes through the ASGI app (a task, the middleware, a response
object) costs about as much CPU as an answer, so refusing is itself the bottleneck and every
answer waits (measured in docs/benchmarks.md#what-changed-and-why). Here the request is admitted
(or not) as soon as its headers are parsed: the app's admission
(`modelship.transport.admission`, the only thing of the app this module knows) takes the slot,
the same count the ASGI middleware uses when the app runs under another server (tests, `uvicorn`
by hand, the adapter off), and the task's end gives it back. A refused request gets pre-rendered
bytes (the service's own 503 body, `Retry-After`, `Content-Length`, keep-alive kept when the
client allows it) once its body has been read, so the connection stays usable and pipelined
requests keep their order. The refusals are written at the end of the loop turn that read them
(`_Turn`), and a read that is exactly one plain request is refused without the HTTP parser
(`_refuse_whole`): together they shortened the overload tail and raised the answers per second,
once the listener had stopped connections waiting to be accepted (listener.py;
docs/benchmarks.md#what-changed-and-why).

Kept on the ordinary path: probes and /metrics (never shed), pipelined requests behind an
unanswered one (they cannot be answered out of order; the middleware admits them when they
run), WebSocket upgrades, and everything when uvicorn's own `--limit-concurrency` is set.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from modelship.transport.admission import (
    ADMITTED,
    REQUEST_ID_HEADER,
    Admission,
    Slots,
    find_admission,
)

# A refused request's body is read and dropped up to this size, so the connection stays open;
# beyond it (or with a chunked body, or when the client waits for 100 Continue) the 503 goes out
# at once with `Connection: close` instead of reading an upload nobody will use.
DRAIN_BYTES = 64 * 1024
SHED_REPORT_EVERY_SECONDS = 1.0
# Requests with these headers are refused through the HTTP parser, which knows their rules.
_SLOW_HEADERS = frozenset({b"connection", b"expect", b"transfer-encoding", b"upgrade"})


class _StatusAndDefaults:
    """The 503 status line and the server's default headers, rendered once per list of them
    (uvicorn makes a new list each second, for its `date` header)."""

    def __init__(self) -> None:
        self.source: list[tuple[bytes, bytes]] | None = None
        self.rendered = b""

    def __call__(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        if default_headers is not self.source:
            lines = [b"%s: %s\r\n" % (name, value) for name, value in default_headers]
            self.rendered = STATUS_LINE[503] + b"".join(lines)
            self.source = default_headers
        return self.rendered


_status_and_default_headers = _StatusAndDefaults()


class _Refused:
    """This worker's refusals, added up and reported to the admission once a second (the end of
    the first second with any), so a refusal costs an addition here instead of metric updates
    and a log line each."""

    def __init__(self) -> None:
        self.by_method: dict[str, int] = {}
        self.since = 0.0
        self.admission: Admission | None = None

    def add(self, method: str, loop: asyncio.AbstractEventLoop) -> None:
        if not self.by_method:
            self.since = time.monotonic()
            loop.call_later(SHED_REPORT_EVERY_SECONDS, self.report)
        self.by_method[method] = self.by_method.get(method, 0) + 1

    def report(self) -> None:
        by_method, self.by_method = self.by_method, {}
        if self.admission is not None:
            self.admission.refused(by_method, time.monotonic() - self.since)


_refused = _Refused()


class _Turn:
    """The refusals of one event-loop turn, written together once the turn's reads are done.

    A worker's loop turn reads every ready connection (about a thousand under the overload
    benchmark) and only then runs the tasks of the requests it admitted.
    Answered as soon as it was read, a refusal came back within the turn while an admitted
    request waited for the next one, so the admitted requests, the service's real work, were
    the whole latency tail. Written when the reads are done, in the same turn as the admitted
    requests' answers, every answer waits about the same.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[SheddingHttpProtocol, bytes, bool]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def answer(self, protocol: SheddingHttpProtocol, content: bytes, keep_alive: bool) -> None:
        if not self.pending or protocol.loop is not self.loop:  # (a closed loop's are dropped)
            self.pending = []
            self.loop = protocol.loop
            protocol.loop.call_soon(self.flush)
        self.pending.append((protocol, content, keep_alive))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for protocol, content, keep_alive in pending:
            protocol.send_refusal(content, keep_alive)


_turn = _Turn()


class _Slot:
    """One admitted request's in-flight slot, given back exactly once."""

    __slots__ = ("on_response", "slots", "taken")

    def __init__(self, slots: Slots, on_response: Callable[[], None]) -> None:
        self.slots = slots
        self.on_response = on_response
        self.taken = True

    def give_back(self) -> None:
        if self.taken:
            self.taken = False
            self.slots.release()

    def response_complete(self) -> None:
        self.give_back()
        self.on_response()

    def task_done(self, _: object) -> None:
        self.give_back()


class _HeadWithBody:
    """The transport as one response sees it: the status line and headers are held and written
    with the first piece of the body, one write (a system call, and a TCP segment on the way to
    the client) where uvicorn makes two. The second write of every answer was a large share of
    a worker's CPU at 32 clients in the profile (py-spy; docs/benchmarks.md#single-row-cpu).
    Anything written before the head (`100 Continue`) goes out at once, as does everything
    after the first piece of the body; closing writes a head still held.

    The cycle is let go once the head is out: the cycle holds this object as its transport, and
    the two referring to each other made every answer a reference cycle. Requests in flight
    outlive the young generations' collections, so those cycles piled up in the oldest one,
    whose collections then freed ~40,000 objects every ~3 s at 2,300 requests/s and stopped
    the worker for 30-150 ms each time, long enough for a burst to pile past the shed budget
    (docs/capacity.md#measured)."""

    __slots__ = ("cycle", "head", "joined", "transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self.transport = transport
        self.cycle = cycle
        self.head: bytes | None = None
        self.joined = False

    def write(self, data: bytes) -> None:
        if self.joined:
            self.transport.write(data)
        elif self.head is not None:
            self.joined = True
            self.cycle = None
            self.transport.write(self.head + data)
            self.head = None
        elif self.cycle.response_started:  # uvicorn writes the head as it starts the response
            self.head = data
        else:
            self.transport.write(data)

    def close(self) -> None:
        self.cycle = None
        if self.head is not None:
            self.joined = True
            self.transport.write(self.head)
            self.head = None
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class SheddingHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that admits each request (`modelship.transport.admission`) when its
    headers arrive and answers a refusal itself. Pass it as uvicorn's `http`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        admission = find_admission(self.app) if self.limit_concurrency is None else None
        self.admission = admission
        self.slots = admission.slots if admission is not None else None
        # The current message is refused: its body is dropped and, unless already done, the
        # refusal is answered when the message is complete.
        self.shedding = False
        self.refusal_sent = False
        self.shed_keep_alive = True
        self.shed_path = "/"
        self.shed_request_id: bytes | None = None
        self.closing_after_refusal = False
        self.message_open = False  # the parser is inside a message (between its begin and end)
        if admission is not None:
            _refused.admission = admission

    def data_received(self, data: bytes) -> None:
        slots = self.slots
        if (
            slots is not None
            and not self.message_open  # (`full` counts a refusal: asked once per request)
            and slots.full()
            and (self.cycle is None or self.cycle.response_complete)
            and not self.closing_after_refusal
            and self._refuse_whole(data)
        ):
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        self.shedding = self.refusal_sent = False
        self.message_open = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        admission = self.admission
        if self.closing_after_refusal or self.transport.is_closing():  # after `Connection: close`
            self.shedding = self.refusal_sent = True
            return
        if (
            admission is None
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined
            or self.parser.should_upgrade()
        ):
            super().on_headers_complete()
            return
        raw_path = httptools.parse_url(self.url).path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        path = self.root_path + path
        if admission.never_shed(path):
            super().on_headers_complete()
        elif admission.slots.admit(count_shed=False):  # counted by `_refused`
            self.scope[ADMITTED] = True  # type: ignore[literal-required]
            super().on_headers_complete()
        else:
            self._refuse(path)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if cycle.scope["method"] != "HEAD":  # (a HEAD answer has no body to join its head to)
            cycle.transport = _HeadWithBody(self.transport, cycle)
        if not cycle.scope.get(ADMITTED):
            super()._start_asgi_task(cycle, app)
            return
        assert self.slots is not None
        slot = _Slot(self.slots, cycle.on_response)
        # The slot is given back when the response is complete (before the client can send its
        # next request, so a client never meets its own previous request's slot) or, failing
        # that, when the task ends however it ends (failed, cancelled, client gone): no leak.
        cycle.on_response = slot.response_complete
        context = contextvars.Context() if self.config.reset_contextvars else None
        task = self.loop.create_task(cycle.run_asgi(app), context=context)  # as uvicorn does
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(slot.task_done)
        self.tasks.add(task)

    # --- refusal -------------------------------------------------------------------------------
    def _refuse(self, path: str) -> None:
        self._unset_keepalive_if_required()
        self.shedding = True
        self.scope["method"] = self.parser.get_method().decode("ascii")
        http_version = self.parser.get_http_version()
        self.shed_keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        self.shed_path = path
        length = -1
        self.shed_request_id = None
        for name, value in self.headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else DRAIN_BYTES + 1
            elif name == b"transfer-encoding":
                length = DRAIN_BYTES + 1
            elif name == REQUEST_ID_HEADER:
                self.shed_request_id = value
        if self.expect_100_continue or length > DRAIN_BYTES:
            self.shed_keep_alive = False
            self._answer_refusal()  # now: the body is not wanted

    def on_body(self, body: bytes) -> None:
        if not self.shedding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.message_open = False
        if self.shedding:
            if not self.refusal_sent:
                self._answer_refusal()
        elif self.cycle is not None:
            super().on_message_complete()

    def _refuse_whole(self, data: bytes) -> bool:
        """Refuse `data` without the HTTP parser when it is exactly one request of the plain
        shape (HTTP/1.1, a `Content-Length` body or none, no `Connection`, `Expect`,
        `Transfer-Encoding` or `Upgrade`, a path that is shed): under overload almost every
        read is one, and the parser's callbacks cost more than the refusal itself. Anything
        else returns False and goes through the parser as usual; the parser's state is not
        touched either way, since `data` ends where the request does."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = data[:end].split(b"\r\n")
        method, _, rest = lines[0].partition(b" ")
        target, _, version = rest.partition(b" ")
        if version != b"HTTP/1.1" or not method.isalpha() or not target.startswith(b"/"):
            return False
        length = 0
        request_id = None
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            name = name.lower()
            if not colon or name in _SLOW_HEADERS or not name.isascii():
                return False
            if name == b"content-length":
                value = value.strip()
                if length or not value.isdigit():
                    return False
                length = int(value)
            elif name == REQUEST_ID_HEADER:
                request_id = value.strip()
        path = target.split(b"?", 1)[0]
        if end + 4 + length != len(data) or b"%" in path or b"#" in path or not path.isascii():
            return False
        text_path = self.root_path + path.decode("ascii")
        assert self.admission is not None
        if self.admission.never_shed(text_path):
            return False
        self._unset_keepalive_if_required()
        self._queue_refusal(method.decode("ascii"), text_path, True, request_id)
        return True

    def _answer_refusal(self) -> None:
        self.refusal_sent = True
        if not self.shed_keep_alive:
            self.closing_after_refusal = True  # what the client sends after it is not read
        self._queue_refusal(
            self.scope["method"], self.shed_path, self.shed_keep_alive, self.shed_request_id
        )

    def _queue_refusal(
        self, method: str, path: str, keep_alive: bool, request_id: bytes | None
    ) -> None:
        assert self.admission is not None
        headers, body = self.admission.refusal(path, keep_alive)
        content = [
            _status_and_default_headers(self.server_state.default_headers),
            REQUEST_ID_HEADER,
            b": ",
            self.admission.request_id(request_id),
            b"\r\n",
            headers,
        ]
        if method != "HEAD":
            content.append(body)
        _refused.add(method, self.loop)
        _turn.answer(self, b"".join(content), keep_alive)

    def send_refusal(self, content: bytes, keep_alive: bool) -> None:
        """Write a refusal `_turn` held to the end of the loop turn."""
        transport = self.transport
        if transport.is_closing():  # the client left meanwhile
            return
        transport.write(content)
        self.server_state.total_requests += 1
        if not keep_alive:
            transport.close()
        elif self.cycle is None or self.cycle.response_complete:  # idle: the keep-alive clock
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
