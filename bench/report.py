"""What the training report adds to training: CPU time and size, per data set.

    uv run python bench/report.py                       # bundled insurance data (default model)
    uv run python bench/report.py --rows 20000 --classes 26 --model logistic

Trains once with `modelship.training.train.train` and prints the CPU seconds of the whole run,
of the report alone (`build_report` + `write_report`), and the report's size. CPU seconds, not
wall time: on a shared machine wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import modelship.training.train as training
from modelship.training.data import BUNDLED_DATA, BUNDLED_TARGET


def synthetic(path: Path, rows: int, classes: int, features: int = 16) -> Path:
    """A many-class table like the one the model search is judged on: numbers, letter labels."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    centers = rng.normal(0, 2.0, (classes, features))
    frame = pd.DataFrame(
        (centers[labels] + rng.normal(0, 1.5, (rows, features))).round(3),
        columns=[f"x{i}" for i in range(features)],
    )
    frame["label"] = [string.ascii_uppercase[i % 26] + str(i // 26 or "") for i in labels]
    frame.to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="synthetic many-class table of this many rows")
    parser.add_argument("--classes", type=int, default=26)
    parser.add_argument("--model", default="auto")
    args = parser.parse_args()
    spent: dict[str, float] = {}
    build, write = training.build_report, training.write_report

    def timed_build(*a: Any) -> Any:
        started = time.process_time()
        result = build(*a)
        spent["report"] = spent.get("report", 0.0) + time.process_time() - started
        return result

    def timed_write(*a: Any) -> Any:
        started = time.process_time()
        result = write(*a)
        spent["report"] = spent.get("report", 0.0) + time.process_time() - started
        return result

    training.build_report = timed_build  # type: ignore[assignment]
    training.write_report = timed_write  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as scratch:
        if args.rows:
            data = synthetic(Path(scratch) / "table.csv", args.rows, args.classes)
            target, name = "label", f"{args.rows:,} rows x {args.classes} classes"
        else:
            data, target, name = BUNDLED_DATA, BUNDLED_TARGET, "insurance (1,338 rows)"
        out = Path(scratch) / "artifact"
        started = time.process_time()
        options = training.TrainOptions(data=data, target=target, output=out, model=args.model)
        training.train(options, lambda _: None)
        total = time.process_time() - started
        size = sum(p.stat().st_size for p in [out / "model-report.html", *out.glob("report/*")])
        page = (out / "model-report.html").stat().st_size
    report = spent["report"]
    print(
        f"{name}, --model {args.model}: training {total:.1f} CPU s, of which the report "
        f"{report:.1f} s ({report / total:.0%}); page {page / 1e6:.2f} MB, "
        f"page + plots {size / 1e6:.2f} MB"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
