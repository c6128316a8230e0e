"""Cost of monitoring on the hot path, in process: one-row predictions with the monitor on and off.

    uv run python bench/monitor_cost.py [--rounds 7] [--calls 2000]

Trains the default model into .bench-cache/monitor (once), then alternates rounds of `calls`
single-row predictions (codec + onnxruntime + metrics callback, as /predict does) with and without
the monitor, folding the monitor's queue between rounds as its thread does. Interleaving keeps a
busy machine from favouring one side; the median per call of each side is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from modelship import artifact
from modelship.monitoring.monitor import Monitor
from modelship.predictor import Predictor
from modelship.settings import Settings
from modelship.training.data import BUNDLED_DATA
from modelship.training.train import TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    model = ROOT / ".bench-cache" / "monitor" / "insurance"
    if not artifact.exists(model):
        options = TrainOptions(data=BUNDLED_DATA, target="charges", output=model)
        train(options, lambda _: None)
    predictor = Predictor(artifact.load(model))
    monitor = Monitor(predictor.card, Settings())
    record = predictor.card.examples[0]
    timings: dict[str, list[float]] = {"off": [], "on": []}
    fold_us: list[float] = []
    for _ in range(args.rounds):
        for side in ("off", "on"):
            predictor.monitor = monitor if side == "on" else None
            started = time.perf_counter()
            for _ in range(args.calls):
                predictor.predict(predictor.schema.from_records([record]))
            timings[side].append((time.perf_counter() - started) / args.calls * 1e6)
        started = time.perf_counter()
        monitor.fold()
        fold_us.append((time.perf_counter() - started) * 1e6 / args.calls)
    off, on = statistics.median(timings["off"]), statistics.median(timings["on"])
    print(f"one-row predict, monitor off: {off:.1f} µs per call (median of {args.rounds} rounds)")
    print(f"one-row predict, monitor on:  {on:.1f} µs per call ({(on / off - 1) * 100:+.1f}%)")
    print(f"folding (monitor thread, off the request): {statistics.median(fold_us):.2f} µs per row")


if __name__ == "__main__":
    main()
