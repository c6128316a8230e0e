"""Cost of monitoring and request capture on the hot path, in process, through the data plane.

    uv run python bench/monitor_cost.py [--rounds 9] [--calls 2000]

Trains the default model into .bench-cache/monitor (once), then builds the service with
`create_app` four times around the same loaded model, and alternates rounds of `calls` one-row
predictions (`DataPlane.predict_record`: the JSON record validated, the model, the prediction
metrics and the data-quality hooks, which is what `POST /predict` runs):

  off          MODELSHIP_MONITORING=false, no capture: the service without either
  monitor      drift and data quality on (the default)
  capture 1%   monitor + MODELSHIP_CAPTURE_RATE=0.01 to a directory store
  capture 100% monitor + every row captured (the worst case)

Each side runs its own background threads (the monitor's fold every second, the capture's
uploads), so their competition for the interpreter is in the numbers. Interleaving rounds keeps a
busy machine from favouring one side; the median per call of each side is printed, then the
cost of the capture thread per row (CSV formatting and the write), off the request.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from modelship import artifact
from modelship.api.app import create_app
from modelship.api.dataplane import DataPlane
from modelship.predictor import Predictor
from modelship.settings import Settings
from modelship.training.data import BUNDLED_DATA
from modelship.training.train import TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent


def side(predictor: Predictor, **settings: Any) -> tuple[DataPlane, Any, Any]:
    """The data plane, monitor and capture of a service built as `modelship serve` builds it."""
    app = create_app(Settings(access_log=False, **settings), predictor)
    dataplane: DataPlane = app.state.dataplane
    dataplane.start()
    for background in (app.state.monitor, app.state.capture):
        if background is not None:
            background.start()
    return dataplane, app.state.monitor, app.state.capture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    model = ROOT / ".bench-cache" / "monitor" / "insurance"
    if not artifact.exists(model):
        options = TrainOptions(data=BUNDLED_DATA, target="charges", output=model)
        train(options, lambda _: None)
    predictor = Predictor(artifact.load(model))
    record = predictor.card.examples[0]
    store = Path(tempfile.mkdtemp(prefix="modelship-capture-bench-"))
    sides = {
        "off": side(predictor, monitoring=False),
        "monitor": side(predictor),
        "capture 1%": side(predictor, capture_rate=0.01, capture_uri=f"file://{store}/a"),
        "capture 100%": side(predictor, capture_rate=1.0, capture_uri=f"file://{store}/b"),
    }
    timings: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, (dataplane, _, _) in sides.items():
            started = time.perf_counter()
            for _ in range(args.calls):
                dataplane.predict_record(record)
            timings[name].append((time.perf_counter() - started) / args.calls * 1e6)
    for _, monitor, capture in sides.values():
        if monitor is not None:
            monitor.stop()
        if capture is not None:
            capture.stop()

    # The capture thread's own cost per row, measured alone: format and write a full batch.
    _, _, capture = side(predictor, capture_rate=1.0, capture_uri=f"file://{store}/c")
    capture.stop()
    dataplane = sides["capture 100%"][0]
    dataplane.quality_hooks = [capture.observe]
    for _ in range(capture.batch_rows):
        dataplane.predict_record(record)
    started = time.perf_counter()
    capture.flush()
    flush_us = (time.perf_counter() - started) / capture.batch_rows * 1e6
    written = sum(1 for _ in store.rglob("*.csv"))

    load = os.getloadavg()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the end; {args.rounds} rounds x {args.calls} calls, interleaved"
    )
    base = statistics.median(timings["off"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"one-row predict, {name:<13} {median:6.1f} µs per call ({(median / base - 1):+.1%})")
    print(f"capture thread (off the request): {flush_us:.1f} µs per row; {written} objects written")


if __name__ == "__main__":
    main()
