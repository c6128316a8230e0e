"""Run the service under uvicorn: with the adapter (admission at the connection, batched
accepts) when the installed uvicorn, uvloop and httptools are the versions it was tested with,
else stock uvicorn with shedding in the ASGI middleware alone.

The adapter extends uvicorn below its public interface (`HttpToolsProtocol` and its private
`_start_asgi_task`, the response callback, `uvloop.Loop`), so it is picked from one table of
tested versions and falls back to stock uvicorn, as uvicorn picks its own protocols
(`uvicorn.protocols.http.auto`). docs/service.md#the-uvicorn-adapter says how to test and add
a version.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import uvicorn

from modelship.transport.uvicorn.listener import port_claim

# The versions the adapter's tests ran with; `service/pyproject.toml` pins exactly these.
TESTED_VERSIONS = {"uvicorn": "0.54.0", "uvloop": "0.23.0", "httptools": "0.9.0"}
# uvicorn import strings of the adapter's parts (uvicorn imports them in each worker).
PROTOCOL = "modelship.transport.uvicorn.protocol:SheddingHttpProtocol"
EVENT_LOOP = "modelship.transport.uvicorn.listener:new_event_loop"

logger = logging.getLogger("modelship")


def installed_versions() -> dict[str, str | None]:
    """The installed version of each library the adapter extends (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in TESTED_VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def untested(installed: Mapping[str, str | None]) -> list[str]:
    """`name version` of each installed library the adapter was not tested with."""
    return [
        f"{name} {installed.get(name) or 'missing'}"
        for name, version in TESTED_VERSIONS.items()
        if installed.get(name) != version
    ]


def adapter_options(
    enabled: bool, installed: Mapping[str, str | None]
) -> tuple[dict[str, Any], str]:
    """uvicorn's `http` and `loop` options, and the one line saying which server runs."""
    if not enabled:
        return {"http": "auto", "loop": "auto"}, (
            "uvicorn adapter off (MODELSHIP_UVICORN_ADAPTER=false): stock uvicorn, requests "
            "shed by the ASGI middleware"
        )
    wrong = untested(installed)
    if wrong:
        tested = ", ".join(f"{name} {version}" for name, version in TESTED_VERSIONS.items())
        return {"http": "auto", "loop": "auto"}, (
            f"uvicorn adapter off: it was tested with {tested}, not {', '.join(wrong)}; stock "
            "uvicorn, requests shed by the ASGI middleware"
        )
    # Admission at the connection: an overloaded worker refuses without an ASGI task; uvloop,
    # accepting connections in batches (libuv takes one per loop turn).
    return {"http": PROTOCOL, "loop": EVENT_LOOP}, ""


def run(
    app_factory: str,
    *,
    adapter: bool,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    log_config: dict[str, Any],
    graceful_seconds: float,
    keep_alive_seconds: int,
) -> None:
    """Serve `app_factory` (a `module:function` uvicorn calls in each worker) until stopped."""
    options, note = adapter_options(adapter, installed_versions())
    if note:
        logging.config.dictConfig(log_config)  # as uvicorn configures it, so the line is JSON
        logger.warning(note)
    with port_claim(host, port):
        uvicorn.run(
            app_factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_config=log_config,
            access_log=False,  # modelship.access logs each request, with its id
            timeout_graceful_shutdown=int(graceful_seconds),
            # uvicorn's protocols (stock and the adapter's alike) read it from this config.
            timeout_keep_alive=keep_alive_seconds,
            **options,
        )
