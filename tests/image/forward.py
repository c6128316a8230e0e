"""Relay TCP connections between a container's own network namespace and the host's.

Each container gets its own network namespace (as under Docker, Kubernetes and awsvpc), so it
listens on its real port (8080) without taking that port on the host, and `--network none` means
what it says. A unix socket is a file, reachable from both namespaces, so the relays meet there:

    python forward.py LISTEN=CONNECT [LISTEN=CONNECT ...]

with each side `tcp:HOST:PORT` or `unix:PATH`. It prints `ready` once every listener is bound.
Standard library only: it runs with whichever interpreter starts it, inside or outside a namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return await asyncio.open_unix_connection(rest)
    host, _, port = rest.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _listen(listen: str, connect: str) -> asyncio.Server:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await _open(connect)
        except OSError:
            writer.close()  # nothing listens there (yet): the client sees a closed connection
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    kind, _, rest = listen.partition(":")
    if kind == "unix":
        return await asyncio.start_unix_server(relay, rest)
    host, _, port = rest.rpartition(":")
    return await asyncio.start_server(relay, host, int(port))


async def _main(pairs: list[str]) -> None:
    servers = [await _listen(*pair.split("=", 1)) for pair in pairs]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1:]))
