"""The event loop `modelship serve` runs: uvloop, accepting new connections in batches.

libuv accepts one connection each time the listening socket is reported readable, that is one
per loop turn (since libuv 1.45, pull request 3696 "unix: don't accept() connections in a loop";
uvloop bundles its own libuv). Under overload a worker's loop turn reads every ready socket, a
long turn, so the worker took few new connections a second and the rest waited in the kernel's
accept queue with their first request unread: they, not the requests the service had read, made
the whole latency tail (docs/benchmarks.md#what-changed-and-why). asyncio's own loop takes up to
`backlog` connections per readiness; this loop does the same, in `BatchListener`, and hands each
accepted socket to uvloop, which serves it as any other connection.

With several workers each listens on a socket of its own, bound with `SO_REUSEPORT` to the
address uvicorn bound (as nginx's `reuse_port` and gunicorn's `--reuse-port`): the kernel hashes
each new connection to one worker's queue. On the socket uvicorn shares between its workers,
whichever worker woke first took a whole burst, up to the batch, and a client or load balancer
that opened its connections together could land them all on one worker while the other idled
(docs/benchmarks.md#connections-per-worker). uvicorn's socket stays bound in every process and
never listens: it holds the port while workers come and go.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvloop

from modelship.errors import ModelshipError

# Connections taken per readiness of the listening socket, as asyncio's loop takes up to its
# backlog. Bounded so one turn does not starve the loop's other work (each worker has a queue of
# its own, see the module's docstring, so the batch no longer decides the spread). A smaller
# batch left a burst of new connections' first requests waiting while the loops filled up; this
# one takes such a burst within a few turns (docs/benchmarks.md#what-changed-and-why).
ACCEPT_BATCH = 512
# After an error such as "too many open files", accepting pauses this long instead of spinning
# on a socket that stays readable (asyncio's loop does the same).
ACCEPT_PAUSE_SECONDS = 1.0

logger = logging.getLogger("uvicorn.error")

ProtocolFactory = Callable[[], asyncio.Protocol]


class BatchListener:
    """A listening socket served by `protocol_factory`, its connections accepted in batches.

    It stands where uvicorn expects the `asyncio.Server` of `loop.create_server`: uvicorn
    calls `close()` and `wait_closed()` at shutdown and reads `sockets`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: ProtocolFactory,
        sock: socket.socket,
        owns_socket: bool,
    ) -> None:
        self.loop = loop
        self.protocol_factory = protocol_factory
        self.sock = sock
        self.sockets = [sock]
        self.owns_socket = owns_socket  # bound here (one worker) rather than by uvicorn
        self.serving = True
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left: taken by another worker, or the queue is empty
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                logger.error(
                    "cannot accept connections (%s); trying again in %.0f s",
                    exc,
                    ACCEPT_PAUSE_SECONDS,
                )
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(ACCEPT_PAUSE_SECONDS, self._resume)
                return
            self.loop.create_task(self._serve(conn))

    def _resume(self) -> None:
        if self.serving:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, conn)
        except OSError:  # the client left before its transport was made
            conn.close()

    def close(self) -> None:
        """Stop accepting; the connections already made are uvicorn's to finish."""
        if self.serving:
            self.serving = False
            self.loop.remove_reader(self.sock.fileno())
            if self.owns_socket:
                self.sock.close()

    async def wait_closed(self) -> None:
        """Nothing to wait for here: uvicorn waits for the connections itself."""


class BatchAcceptLoop(uvloop.Loop):
    """uvloop whose plain TCP servers accept connections in batches (see the module's
    docstring); TLS and the options uvicorn does not use stay with uvloop's own server."""

    async def create_server(  # type: ignore[override]  # the subset uvicorn calls
        self,
        protocol_factory: ProtocolFactory,
        host: str | None = None,
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        **options: Any,
    ) -> Any:
        if ssl is None and not options:
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # uvicorn's, bound once for its workers: this worker listens on its own.
                address, number = sock.getsockname()[:2]
                own = bind(address, number, backlog, family=sock.family, reuse_port=True)
                return BatchListener(self, protocol_factory, own, owns_socket=True)
            if host is not None:  # one worker: bound here
                return BatchListener(self, protocol_factory, bind(host, port, backlog), True)
        if sock is not None:
            return await super().create_server(
                protocol_factory, sock=sock, backlog=backlog, ssl=ssl, **options
            )
        return await super().create_server(
            protocol_factory, host, port, backlog=backlog, ssl=ssl, **options
        )


def bind(
    host: str,
    port: int,
    backlog: int,
    *,
    family: socket.AddressFamily | None = None,
    reuse_port: bool = False,
) -> socket.socket:
    """A listening TCP socket, bound as uvicorn binds the one its workers share; `reuse_port`:
    one of a group on the same address, among which the kernel spreads new connections.

    A worker's group socket binds beside uvicorn's (`SO_REUSEADDR`: it never listens). When a
    worker exits, the connections still queued on its socket, not yet accepted, are reset
    unless the host sets `net.ipv4.tcp_migrate_req=1` (Linux 5.14+), which moves them to the
    group's other sockets; new connections go to the remaining workers at once."""
    if family is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class PortTaken(ModelshipError):
    """Another server holds the port: exit 1, as uvicorn exits when the address is in use."""

    exit_code = 1


@contextmanager
def port_claim(host: str, port: int) -> Iterator[None]:
    """Hold `host:port` for this server while it starts and serves, against another modelship
    server started at the same moment.

    The kernel stops a second server only once the first listens: until then uvicorn's shared
    socket is bound but not listening (`SO_REUSEADDR` lets a second one bind beside it), and
    every worker's `SO_REUSEPORT` socket joins any group of the same user on that address. Two
    servers started together would both come up and split the connections between them. The
    claim is a name in the abstract Unix socket namespace, which the kernel keeps per network
    namespace (as it keeps TCP ports) and frees when the process ends, however it ends."""
    if port == 0:  # the kernel picks a free port for each bind: nothing to share
        yield
        return
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0modelship serve {host}:{port}")
    except OSError as exc:
        claim.close()
        raise PortTaken(
            f"port {port} on {host} is taken: another modelship server is starting or serving "
            "there (in this network namespace); stop it, or choose another port "
            "(--port, MODELSHIP_PORT)"
        ) from exc
    try:
        yield
    finally:
        claim.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's `loop` setting for `modelship serve` (`...uvicorn.listener:new_event_loop`)."""
    return BatchAcceptLoop()
