"""The shedding HTTP protocol on an overloaded worker, fed bytes as a socket would feed them:
which reads are refused without the HTTP parser, and that both ways answer alike."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from modelship.contracts.settings import Settings
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.transport.admission import find_admission
from modelship.transport.http.app import create_app
from modelship.transport.uvicorn.protocol import SheddingHttpProtocol

BODY = b'{"age": 45}'


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def post(path: str = "/predict", headers: str = "", body: bytes = BODY) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\nX-Request-ID: r-1\r\n\r\n"
    ).encode() + body


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def connect(loop: asyncio.AbstractEventLoop, regression_predictor: Predictor) -> Any:
    """A factory of protocols on one worker whose every in-flight slot is taken."""
    app = create_app(build_serving(Settings(max_in_flight=1), regression_predictor))
    config = Config(app, http=SheddingHttpProtocol, log_config=None)
    config.load()
    admission = find_admission(config.loaded_app)
    assert admission is not None
    admission.slots.in_flight = admission.slots.max_in_flight
    state = ServerState()

    def connect() -> tuple[SheddingHttpProtocol, RecordingTransport]:
        protocol = SheddingHttpProtocol(config, state, {}, loop)
        transport = RecordingTransport()
        protocol.connection_made(transport)
        return protocol, transport

    return connect


def answers(loop: asyncio.AbstractEventLoop, transport: RecordingTransport) -> list[bytes]:
    """The status lines written once the loop turn is over (refusals go out at its end)."""
    loop.run_until_complete(asyncio.sleep(0))
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", transport.written)


@pytest.mark.parametrize(
    ("request_bytes", "skips_parser"),
    [
        (post(), True),
        (post("/v2/models/m/infer?x=1"), True),
        (b"GET /model HTTP/1.1\r\nHost: t\r\n\r\n", True),
        (post(headers="Connection: keep-alive\r\n"), False),
        (post(headers="Expect: 100-continue\r\n"), False),
        (post().replace(b"HTTP/1.1", b"HTTP/1.0"), False),
        (post() + post(), False),  # pipelined: the parser keeps them in order
        (post()[:-3], False),  # the body is still coming
        (post(body=b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked"), False),
        (post("/pre%64ict"), False),
        (post().replace(b"Content-Length", b"Content-Length: 1\r\nContent-Length"), False),
        (b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", False),  # probes are never shed
    ],
)
def test_only_plain_single_requests_skip_the_parser(
    connect: Any, request_bytes: bytes, skips_parser: bool
) -> None:
    protocol, _ = connect()
    assert protocol._refuse_whole(request_bytes) is skips_parser


def test_both_ways_give_the_same_refusal_and_keep_the_connection(
    connect: Any, loop: asyncio.AbstractEventLoop
) -> None:
    fast, fast_transport = connect()
    parsed, parsed_transport = connect()
    fast.data_received(post())
    parsed.data_received(post(headers="Connection: keep-alive\r\n"))
    assert answers(loop, fast_transport) == [b"HTTP/1.1 503 Service Unavailable"]
    assert fast_transport.written == parsed_transport.written
    assert b"x-request-id: r-1\r\n" in fast_transport.written
    assert not fast_transport.closed and not parsed_transport.closed

    # The next request on the same connection is read as a new one, whichever way it goes.
    fast.data_received(post(headers="Connection: keep-alive\r\n"))
    parsed.data_received(post())
    assert answers(loop, fast_transport) == [b"HTTP/1.1 503 Service Unavailable"] * 2
    assert fast_transport.written == parsed_transport.written


def test_refusals_wait_for_the_end_of_the_loop_turn(
    connect: Any, loop: asyncio.AbstractEventLoop
) -> None:
    protocol, transport = connect()
    protocol.data_received(post())
    assert transport.written == b""  # read, not answered yet: the turn's other reads come first
    assert answers(loop, transport) == [b"HTTP/1.1 503 Service Unavailable"]


def test_a_client_that_asked_to_close_is_not_read_further(
    connect: Any, loop: asyncio.AbstractEventLoop
) -> None:
    protocol, transport = connect()
    protocol.data_received(post(headers="Connection: close\r\n"))
    protocol.data_received(post())  # sent before the answer came: nobody reads it
    assert answers(loop, transport) == [b"HTTP/1.1 503 Service Unavailable"]
    assert b"connection: close" in transport.written and transport.closed


@pytest.mark.parametrize(
    "http", ["httptools", "h11", "modelship.transport.uvicorn.protocol:SheddingHttpProtocol"]
)
def test_serve_gives_every_http_protocol_its_keep_alive(
    http: str,
    loop: asyncio.AbstractEventLoop,
    regression_predictor: Predictor,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # `serve` runs the shedding protocol; a stock one (uvicorn's own, with the same config)
    # must get the same keep-alive from it.
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from modelship import cli
    from modelship.model import artifact

    captured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: captured.update(options))
    monkeypatch.setattr(artifact, "exists", lambda path: True)
    monkeypatch.setattr(artifact, "load", lambda path: None)
    for name in ("ARTIFACT", "KEEP_ALIVE_SECONDS"):  # `serve` sets them; restored afterwards
        monkeypatch.setenv(f"MODELSHIP_{name}", "")
    monkeypatch.setenv("MODELSHIP_ARTIFACT", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert cli.main(["serve", "--keep-alive-seconds", "900"]) == 0
    options = {**captured, "http": http, "log_config": None}
    del options["factory"], options["loop"]
    config = Config(create_app(build_serving(Settings(), regression_predictor)), **options)
    config.load()
    protocol = config.http_protocol_class(config, ServerState(), {}, loop)  # type: ignore[call-arg]
    assert isinstance(protocol, HttpToolsProtocol | H11Protocol)
    assert protocol.timeout_keep_alive == 900


class WritesTransport(RecordingTransport):
    """Each write the protocol makes, apart (one is a system call and a TCP segment)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self.writes.append(bytes(data))


def _writes_connection(
    loop: asyncio.AbstractEventLoop, predictor: Predictor
) -> tuple[SheddingHttpProtocol, WritesTransport]:
    """A connection to a worker with free slots (no lifespan: /predict answers 503 not-ready),
    recording each write."""
    app = create_app(build_serving(Settings(), predictor))
    config = Config(app, http=SheddingHttpProtocol, log_config=None, lifespan="off")
    config.load()
    protocol = SheddingHttpProtocol(config, ServerState(), {}, loop)
    transport = WritesTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_an_answer_is_one_write_and_100_continue_is_not_held(
    loop: asyncio.AbstractEventLoop, regression_predictor: Predictor
) -> None:
    protocol, transport = _writes_connection(loop, regression_predictor)

    def run_until(writes: int) -> list[bytes]:
        for _ in range(200):
            if len(transport.writes) >= writes:
                break
            loop.run_until_complete(asyncio.sleep(0.005))
        return transport.writes

    # A probe (the stock path) and an admitted request: status line, headers and body at once.
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    (probe,) = run_until(1)
    assert probe.startswith(b"HTTP/1.1 200 OK\r\n") and probe.endswith(b'{"status":"ok"}')
    protocol.data_received(post())
    answer = run_until(2)[1]  # (503: no lifespan here, the model is not "loaded")
    assert answer.startswith(b"HTTP/1.1 503") and b"\r\n\r\n{" in answer, answer
    # A client waiting for 100 Continue gets it before it sends the body, then one write again.
    protocol.data_received(post(headers="Expect: 100-continue\r\n")[: -len(BODY)])
    assert run_until(3)[2] == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.data_received(BODY)
    assert run_until(4)[3].startswith(b"HTTP/1.1 503")
    # A HEAD answer has no body: its head goes out alone.
    protocol.data_received(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert run_until(5)[4].endswith(b"\r\n\r\n")
    assert len(transport.writes) == 5 and not transport.closed
    protocol.connection_lost(None)


def test_answers_leave_no_reference_cycles_behind(
    loop: asyncio.AbstractEventLoop, regression_predictor: Predictor
) -> None:
    """Garbage in cycles waits for the collector, and requests in flight outlive the young
    generations' collections: at 2,300 requests/s a worker's oldest generation freed ~40,000
    such objects every ~3 s, stopping it for 30-150 ms each time (docs/capacity.md#measured).
    Each answer left one (the request's cycle and the transport holding the head)."""
    protocol, transport = _writes_connection(loop, regression_predictor)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable stays in gc.garbage
    try:
        for number in range(1, 11):
            protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + post())
            for _ in range(200):
                if len(transport.writes) >= 2 * number:
                    break
                loop.run_until_complete(asyncio.sleep(0.005))
        assert len(transport.writes) == 20
        gc.collect()
        left = [
            type(o).__qualname__
            for o in gc.garbage
            if type(o).__module__.startswith(("uvicorn", "modelship"))
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        protocol.connection_lost(None)
    assert left == []
