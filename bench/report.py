"""What the training report adds to training: CPU time, memory and size, per data set.

    uv run python bench/report.py                                  # bundled insurance data
    uv run python bench/report.py --model ridge
    uv run python bench/report.py --rows 20000 --classes 26 --model logistic
    uv run python bench/report.py --rows 3000 --numeric 60 --categorical 20 --classes 2 \\
        --model logistic                                           # a wide table
    uv run python bench/report.py --rows 20000 --categorical 1 --categories 2000 --classes 5 \\
        --model logistic                                           # a text column, many values

Trains once with `modelship.build.training.train.train` (the search and the footprint process
included) and prints the CPU seconds of the whole run (this process and its children), of the
report alone (`build_report` + `write_report`), how much the report raised the process's peak
memory, and the report's size. CPU seconds, not wall time: on a shared machine wall time
mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import os
import resource
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import modelship.build.report.build as report_build
import modelship.build.training.train as training
from modelship.build.training.data import BUNDLED_DATA, BUNDLED_TARGET
from modelship.build.training.options import TrainOptions


def synthetic(
    path: Path, *, rows: int, classes: int, numeric: int, categorical: int, categories: int
) -> Path:
    """Numbers around one centre per class, letter labels, and text columns whose values lean
    towards a class (so they matter to the model)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    centers = rng.normal(0, 2.0, (classes, numeric))
    frame = pd.DataFrame(
        (centers[labels] + rng.normal(0, 1.5, (rows, numeric))).round(3),
        columns=[f"x{i}" for i in range(numeric)],
    )
    for column in range(categorical):
        leaning = (labels * (categories // max(classes, 1)) + rng.integers(0, 3, rows)) % categories
        random = rng.integers(0, categories, rows)
        values = np.where(rng.random(rows) < 0.5, leaning, random)
        frame[f"c{column}"] = [f"v{v:04d}" for v in values]
    frame["label"] = [string.ascii_uppercase[i % 26] + str(i // 26 or "") for i in labels]
    frame.to_csv(path, index=False)
    return path


def _cpu() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="synthetic table of this many rows")
    parser.add_argument("--classes", type=int, default=26)
    parser.add_argument("--numeric", type=int, default=16, help="numeric columns")
    parser.add_argument("--categorical", type=int, default=0, help="text columns")
    parser.add_argument("--categories", type=int, default=50, help="values per text column")
    parser.add_argument("--model", default="auto")
    args = parser.parse_args()
    spent = {"cpu": 0.0, "wall": 0.0}
    peak: dict[str, float] = {}
    build, write = report_build.build_report, report_build.write_report

    def timed(function: Any) -> Any:
        def run(*a: Any) -> Any:
            peak.setdefault("before", _peak_mb())
            cpu, wall = time.process_time(), time.perf_counter()
            result = function(*a)
            spent["cpu"] += time.process_time() - cpu
            spent["wall"] += time.perf_counter() - wall
            peak["after"] = _peak_mb()
            return result

        return run

    # add_report (what training and import call) looks these up at call time
    report_build.build_report = timed(build)
    report_build.write_report = timed(write)
    with tempfile.TemporaryDirectory() as scratch:
        if args.rows:
            data = synthetic(
                Path(scratch) / "table.csv",
                rows=args.rows,
                classes=args.classes,
                numeric=args.numeric,
                categorical=args.categorical,
                categories=args.categories,
            )
            target = "label"
            text = f", {args.categorical} text x {args.categories:,} values" * bool(
                args.categorical
            )
            name = f"{args.rows:,} rows x {args.numeric} numbers{text}, {args.classes} classes"
        else:
            data, target, name = BUNDLED_DATA, BUNDLED_TARGET, "insurance (1,338 rows)"
        out = Path(scratch) / "artifact"
        cpu, wall = _cpu(), time.perf_counter()
        options = TrainOptions(data=data, target=target, output=out, model=args.model)
        training.train(options, lambda _: None)
        total, total_wall = _cpu() - cpu, time.perf_counter() - wall
        size = sum(p.stat().st_size for p in [out / "model-report.html", *out.glob("report/*")])
        page = (out / "model-report.html").stat().st_size
    report = spent["cpu"]
    print(
        f"{name}, --model {args.model}: training {total:.1f} CPU s ({total_wall:.1f} s wall), "
        f"of which the report {report:.1f} CPU s ({report / total:.0%}; "
        f"{spent['wall']:.1f} s wall); peak memory {peak['before']:.0f} MB before the report, "
        f"{peak['after']:.0f} MB after; page {page / 1e6:.2f} MB, page + plots "
        f"{size / 1e6:.2f} MB; load average {os.getloadavg()[0]:.1f}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
