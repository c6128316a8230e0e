"""Per-request CPU cost of the ASGI app alone (no sockets, no event-loop I/O), feature by feature.

    uv run python bench/asgi_cost.py [ARTIFACT]

Drives `/predict` through the app's ASGI interface in a loop, so the numbers are repeatable on a
busy machine, and shows what validation, metrics, logging and access control each cost.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-0123456789abcdef"


async def drive(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], n: int) -> float:
    """Least CPU µs per request over 6 rounds of n requests (CPU time, not wall time, and the
    least round: other processes on the machine only ever add to it)."""
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    rounds = []
    for _ in range(6):
        started = time.process_time()
        for _ in range(n):
            await app(dict(scope_base), receive, send)
        rounds.append((time.process_time() - started) / n * 1e6)
    assert set(statuses) == {200}, set(statuses)
    return min(rounds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artifact",
        nargs="?",
        type=Path,
        default=ROOT / ".bench-cache" / "artifact",
        help="the model artifact (default: bench/run.py's, .bench-cache/artifact)",
    )
    artifact_dir: Path = parser.parse_args().artifact
    from modelship.contracts.settings import Settings
    from modelship.errors import ArtifactError
    from modelship.model import artifact
    from modelship.model.predictor import Predictor
    from modelship.serving.compose import build_serving
    from modelship.transport.http.app import create_app
    from modelship.transport.http.logging import JsonLinesHandler, tune_logging

    try:
        predictor = Predictor(artifact.load(artifact_dir))
    except ArtifactError as exc:
        parser.error(str(exc))
    record = json.dumps(predictor.card.examples[0]).encode()
    tune_logging()
    # What `modelship serve` configures (transport/http/logging.py log_config), writing to memory.
    logging.getLogger("modelship").addHandler(JsonLinesHandler(io.StringIO()))
    logging.getLogger("modelship").propagate = False
    logging.getLogger("modelship").setLevel(logging.INFO)
    variants: dict[str, dict[str, Any]] = {
        "modelship, everything on": {"api_key": KEY},
        "  without access control": {},
        "  without access log": {"api_key": KEY, "access_log": False},
        "  without metrics": {"api_key": KEY, "metrics": False},
        "  without all three": {"access_log": False, "metrics": False},
    }
    n = 2000
    loop = asyncio.new_event_loop()
    for label, settings in variants.items():
        app = create_app(build_serving(Settings.model_validate(settings), predictor))
        app.state.dataplane.ready = True
        predictor.warm_up()
        headers = [(b"x-api-key", KEY.encode())] if "api_key" in settings else []
        print(f"{label:34s} {loop.run_until_complete(drive(app, record, headers, n)):6.1f} µs")
    if predictor.card.task != "regression":
        print("(the ceiling app, bench/apps/ceiling.py, answers regression models only)")
        return
    os.environ["BENCH_ARTIFACT"] = str(artifact_dir)
    sys.path.insert(0, str(ROOT / "bench" / "apps"))
    ceiling = importlib.import_module("ceiling").app
    cost = loop.run_until_complete(drive(ceiling, record, [], n))
    print(f"{'ceiling (bare FastAPI + ORT)':34s} {cost:6.1f} µs")


if __name__ == "__main__":
    main()
