"""`modelship serve` with the uvicorn adapter off (MODELSHIP_UVICORN_ADAPTER=false), or with a
uvicorn the adapter was not tested with: stock uvicorn still serves, and still sheds load, in
the ASGI middleware (each refusal costs an ASGI task there, so it is slower, not different)."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelship.transport.uvicorn import server
from tests.service.transport.uvicorn.test_serve_process import (
    _csv_request,
    _post,
    _read_all,
    get,
    serve,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BURST = 40


def _predict_once(port: int, example: bytes, rid: str) -> tuple[bytes, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(_post("/predict", example, rid, "Connection: close\r\n"))
        answer = _read_all(client)
    return answer, time.monotonic() - started


def test_serve_with_the_adapter_off_serves_and_sheds(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    with serve(regression_artifact, tmp_path, max_in_flight="1", uvicorn_adapter="false") as (
        _,
        port,
    ):
        example = get(port, "/model/examples/0")[1]
        # A half-sent upload holds the one slot (the middleware admits it when the app starts,
        # at its headers); a burst of predictions meanwhile is refused, every one answered.
        head, csv_body = _csv_request(insurance_csv, port)
        holder = socket.create_connection(("127.0.0.1", port), timeout=20)
        holder.sendall(
            head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + csv_body[:1000]
        )
        time.sleep(0.3)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _predict_once(port, example, f"r{i}"), range(BURST)))
        for answer, seconds in answers:
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert seconds < 5, seconds  # bounded: refused at once, not queued behind the upload
            error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
            assert error["type"] == "overloaded" and "MODELSHIP_MAX_IN_FLIGHT" in error["message"]
        assert get(port, "/healthz")[0] == 200  # probes are never shed
        holder.sendall(csv_body[1000:])
        assert _read_all(holder).startswith(b"HTTP/1.1 200")
        holder.close()
        # The slot is back: the service serves again.
        answer, _ = _predict_once(port, example, "after")
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
    notes = [line for line in lines if "uvicorn adapter off" in line.get("message", "")]
    assert len(notes) == 1, notes
    assert "MODELSHIP_UVICORN_ADAPTER=false" in notes[0]["message"]
    # Shed by the middleware: one access-log line per refusal, with its status.
    assert sum(1 for line in lines if line.get("status") == 503) == BURST


def test_an_untested_uvicorn_falls_back_to_stock_uvicorn() -> None:
    installed = {**server.TESTED_VERSIONS, "uvicorn": "0.35.0"}
    options, note = server.adapter_options(True, installed)
    assert options == {"http": "auto", "loop": "auto"}
    assert note == (
        "uvicorn adapter off: it was tested with uvicorn 0.54.0, uvloop 0.23.0, httptools "
        "0.9.0, not uvicorn 0.35.0; stock uvicorn, requests shed by the ASGI middleware"
    )
    missing: dict[str, Any] = {**server.TESTED_VERSIONS, "uvloop": None}
    assert "not uvloop missing" in server.adapter_options(True, missing)[1]


def test_the_tested_versions_are_installed_and_pinned() -> None:
    """The adapter runs in this environment, and the service's pins are the tested versions."""
    assert server.untested(server.installed_versions()) == []
    options, note = server.adapter_options(True, server.installed_versions())
    assert options == {"http": server.PROTOCOL, "loop": server.EVENT_LOOP} and note == ""
    pyproject = (Path(server.__file__).parents[4] / "pyproject.toml").read_text()
    for name, version in server.TESTED_VERSIONS.items():
        extra = "[standard]" if name == "uvicorn" else ""
        assert f'"{name}{extra}=={version}"' in pyproject, name
