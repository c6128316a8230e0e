"""Measure what a model costs to serve: file size, predict latency and a worker's memory.

`measure_footprint` starts a fresh Python process that loads the artifact the way a server
worker does (artifact check, ONNX session with the serving thread settings, the data plane and
the FastAPI app, the warm-up call), times predictions in onnxruntime and reports the process's
peak resident memory. A fresh process, because memory is only meaningful for a process that
holds nothing else: the training process that calls this holds scikit-learn, pandas and the data.

This module imports only the standard library (and modelship's errors and contracts) at the top,
so the measuring process pays for nothing the server would not load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelship.contracts.footprint import BATCH_ROWS, Footprint
from modelship.errors import ExportError

if TYPE_CHECKING:
    from modelship.contracts.card import ModelCard

# Enough repetitions for a stable median, bounded in time for slow (large) models.
ROW_REPEATS, ROW_SECONDS = 300, 1.0
BATCH_REPEATS, BATCH_SECONDS = 30, 2.0
MEASURE_TIMEOUT_SECONDS = 300.0


class FootprintError(ExportError):
    """The measuring process failed: the artifact cannot be served as it is."""


def measure_footprint(artifact_dir: Path) -> Footprint:
    """Load `artifact_dir` in a fresh serving process and measure it there."""
    with tempfile.TemporaryDirectory(prefix="modelship-footprint-") as metrics_dir:
        # The server's environment: its metrics directory, and no thread pools beyond the one
        # onnxruntime thread a worker uses (MODELSHIP_* of the caller must not leak in).
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIP_")}
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "modelship.build.measure", str(artifact_dir)],
                capture_output=True,
                text=True,
                env=env,
                timeout=MEASURE_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FootprintError(
                f"measuring {artifact_dir} took more than {MEASURE_TIMEOUT_SECONDS:.0f} s"
            ) from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FootprintError(f"cannot serve {artifact_dir} to measure it: {last}")
    return Footprint(**json.loads(done.stdout.strip().splitlines()[-1]))


def _measure_here(artifact_dir: Path) -> Footprint:
    """Inside the fresh process: load as `modelship serve` does, then time and weigh."""
    from modelship.contracts.settings import Settings
    from modelship.model import artifact
    from modelship.model.codecs.records import RecordsCodec
    from modelship.model.predictor import Predictor
    from modelship.serving.compose import build_serving
    from modelship.transport.http.app import create_app

    loaded = artifact.load(artifact_dir)
    settings = Settings(artifact=artifact_dir)
    predictor = Predictor(loaded, threads=settings.onnx_threads)
    create_app(build_serving(settings, predictor))
    predictor.warm_up()
    rows = synthetic_rows(loaded.card, BATCH_ROWS)
    one = RecordsCodec(predictor.schema).decode(rows[:1])
    many = RecordsCodec(predictor.schema).decode(rows)
    row_ms = _median_ms(lambda: predictor.predict(one), ROW_REPEATS, ROW_SECONDS)
    batch_ms = _median_ms(lambda: predictor.predict(many), BATCH_REPEATS, BATCH_SECONDS)
    return Footprint(
        model_bytes=len(loaded.onnx_bytes),
        latency_row_ms=round(row_ms, 4),
        latency_batch_ms=round(batch_ms, 3),
        serving_rss_mb=round(peak_rss_mb(), 1),
    )


def synthetic_rows(card: ModelCard, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows spread over the training data's ranges and categories (not one row repeated,
    which would flatter tree models: every row would take the same path)."""
    import numpy as np

    random = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for feature in card.features:
        if feature.numeric is not None:
            low, high = feature.numeric.min, feature.numeric.max
            columns[feature.name] = random.uniform(low, high, count).tolist()
        else:
            choices = feature.categories or [""]
            columns[feature.name] = [choices[i] for i in random.integers(0, len(choices), count)]
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _median_ms(call: Any, repeats: int, budget_seconds: float) -> float:
    timings: list[float] = []
    stop = time.perf_counter() + budget_seconds
    while len(timings) < repeats and (len(timings) < 3 or time.perf_counter() < stop):
        started = time.perf_counter_ns()
        call()
        timings.append((time.perf_counter_ns() - started) / 1e6)
    timings.sort()
    return timings[len(timings) // 2]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (the figure an OOM killer compares).

    On Linux from /proc (VmHWM): getrusage's ru_maxrss survives exec, so a process started by
    a large one (the training process) would report its parent's size.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modelship.build.measure ARTIFACT_DIR", file=sys.stderr)
        return 2
    print(json.dumps(asdict(_measure_here(Path(argv[0])))))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
