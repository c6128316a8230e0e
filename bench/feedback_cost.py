"""CPU the feedback join's writer thread spends per answer, as its window fills and stays full.

    uv run python -m bench.feedback_cost [--windows 3] [--rate 2000] [--window-rows 100000]

Feeds a join (`Feedback`, default settings unless told) single-record answers with generated
32-character request ids (what `modelship serve` makes when the client sends none): `--rate`
answers per flush, one flush and sweep per simulated second as the worker's thread runs them
(`feedback_flush_seconds` is 1), until `--windows` windows' worth have been answered. Each
flush's thread CPU time (`time.thread_time`: the CPU a replica's quota pays, not wall time) is
divided by the answers it wrote, and printed per tenth of the run: the first window fills the
join, the later ones keep it full (the sweep forgets the oldest answers and keeps their ids for
another window). The figure that matters is whether the cost stays flat: `flat` is the median
over the last window's worth of flushes over the median over the first (filling) window's.

CPU time on a shared machine is noisier than sizes and counts; compare runs back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from modelship.contracts.settings import Settings
from modelship.model.codecs.base import ModelInput, Warnings
from modelship.model.predictor import Predictions
from modelship.serving.feedback import Feedback, PredictionIds

VERSION = "0123456789ab"  # a model version as the card makes them


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=float, default=3.0, help="windows' worth to answer")
    parser.add_argument("--rate", type=int, default=2_000, help="answers per flush (per second)")
    parser.add_argument("--window-rows", type=int, default=Settings().feedback_window_rows)
    args = parser.parse_args()
    if args.rate < 1 or args.windows <= 0 or args.window_rows < 1:
        parser.error("--rate, --windows and --window-rows must be positive")
    settings = Settings(feedback_window_rows=args.window_rows)
    batch = ModelInput(feeds={}, rows=1, warnings=Warnings(), row_locs=[])
    result = Predictions(values=np.array([12345.678], dtype=np.float32))
    flushes = max(1, round(args.windows * args.window_rows / args.rate))
    costs: list[tuple[float, float]] = []  # (fill before the flush, µs per answer)
    with tempfile.TemporaryDirectory(prefix="feedback-cost-") as directory:
        feedback = Feedback([], settings, Path(directory))
        answered = 0
        for _ in range(flushes):
            for _ in range(args.rate):
                feedback.observe(VERSION, batch, result, PredictionIds(os.urandom(16).hex()))
            started = time.thread_time()
            feedback.flush(sweep=True)
            spent = time.thread_time() - started
            costs.append((answered / args.window_rows, spent / args.rate * 1e6))
            answered += args.rate
        files = sum(p.stat().st_size for p in Path(directory).iterdir())
        remembered = feedback.remembered()
        feedback.stop()
    print(
        f"{answered} single-record answers, {args.rate} per flush and sweep, window "
        f"{args.window_rows} answers; remembered at the end {remembered}, state directory "
        f"{files / 2**20:.1f} MiB ({files / max(remembered, 1):.0f} bytes per remembered answer)"
    )
    print("answered (windows)   writer CPU per answer, µs: median [min, max]")
    tenth = max(1, len(costs) // 10)
    medians = []
    for start in range(0, len(costs) - tenth + 1, tenth):
        part = [cost for _, cost in costs[start : start + tenth]]
        medians.append(statistics.median(part))
        fill = costs[start][0]
        print(
            f"  {fill:5.2f}-{costs[start + tenth - 1][0] + args.rate / args.window_rows:5.2f}"
            f"         {medians[-1]:6.1f} [{min(part):.1f}, {max(part):.1f}]"
        )
    window = max(1, round(args.window_rows / args.rate))  # flushes per window's worth
    first = statistics.median(cost for _, cost in costs[:window])
    last = statistics.median(cost for _, cost in costs[-window:])
    print(
        f"flat: last window's median / first window's = {last:.1f} / {first:.1f} µs = "
        f"{last / first:.2f}"
    )


if __name__ == "__main__":
    main()
