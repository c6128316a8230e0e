"""The event loop of `modelship serve`: a burst of connections is taken within a few loop turns
(libuv alone takes one per turn), accept errors pause accepting, and closing stops it."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import pytest

from modelship.transport.uvicorn import listener
from modelship.transport.uvicorn.listener import BatchAcceptLoop, BatchListener, ProtocolFactory

BURST = 300


class Counting(asyncio.Protocol):
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made += 1


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = BatchAcceptLoop()
    Counting.made = 0
    yield loop
    loop.close()


def turns(loop: asyncio.AbstractEventLoop, count: int) -> None:
    for _ in range(count):
        loop.run_until_complete(asyncio.sleep(0))


def test_a_burst_of_connections_is_accepted_within_a_few_loop_turns(
    loop: asyncio.AbstractEventLoop,
) -> None:
    server = loop.run_until_complete(loop.create_server(Counting, "127.0.0.1", 0, backlog=1024))
    assert isinstance(server, BatchListener) and server.owns_socket
    port = server.sock.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
    try:
        # Every connection is queued in the kernel before the loop looks: one turn takes them
        # (up to ACCEPT_BATCH), and a turn or two make their transports.
        turns(loop, 8)
        assert Counting.made == BURST
    finally:
        for client in clients:
            client.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
    assert server.sock.fileno() == -1  # bound here, so closed here


class FailingOnce(socket.socket):
    """A listening socket whose first accept fails as when the process is out of files."""

    failed = False

    def accept(self) -> tuple[socket.socket, object]:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_an_accept_error_pauses_accepting_then_it_resumes(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "ACCEPT_PAUSE_SECONDS", 0.05)
    sock = FailingOnce(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = BatchListener(loop, Counting, sock, owns_socket=False)
    client = socket.create_connection(sock.getsockname())
    try:
        turns(loop, 5)
        assert sock.failed and Counting.made == 0  # paused, not spinning on the error
        loop.run_until_complete(asyncio.sleep(0.1))
        turns(loop, 5)
        assert Counting.made == 1
    finally:
        client.close()
        server.close()
    assert sock.fileno() != -1  # a socket the listener was given stays open
    sock.close()


def test_each_worker_listens_on_its_own_socket_beside_uvicorns(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """uvicorn binds one socket for its workers; each worker's loop listens on a socket of its
    own on that address, the kernel spreads new connections over them, and closing stops one
    without closing uvicorn's."""
    shared = socket.socket()
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    shared.bind(("127.0.0.1", 0))  # as uvicorn's Config.bind_socket leaves it
    address = shared.getsockname()
    other = BatchAcceptLoop()
    made = {loop: 0, other: 0}

    def counting(each: asyncio.AbstractEventLoop) -> ProtocolFactory:
        def factory() -> asyncio.Protocol:
            made[each] += 1
            return asyncio.Protocol()

        return factory

    servers: list[BatchListener] = []
    for each in (loop, other):
        server = each.run_until_complete(
            each.create_server(counting(each), sock=shared, backlog=64)
        )
        assert isinstance(server, BatchListener)
        servers.append(server)
    clients = []
    try:
        for own in servers:
            assert own.owns_socket
            assert own.sock is not shared and own.sock.getsockname() == address
        clients = [socket.create_connection(address) for _ in range(64)]
        for _ in range(8):
            turns(loop, 1)
            turns(other, 1)
        assert sum(made.values()) == 64 and min(made.values()) > 0, made
    finally:
        for own in servers:
            own.close()
        other.close()
        for client in clients:
            client.close()
    assert all(own.sock.fileno() == -1 for own in servers)
    assert shared.fileno() != -1  # uvicorn's stays bound, holding the port
    with pytest.raises(ConnectionRefusedError):  # nobody listens any more
        socket.create_connection(address)
    shared.close()
