"""`modelship import` on more than toy data: 20,000 rows, a text column with 2,000 categories,
and a wide 26-class table.

Fits a scikit-learn pipeline (one-hot + random forest), an XGBoost booster and a 26-class
LightGBM booster on 100 columns, saves them as skops / JSON / text, runs `modelship import` on
each as a subprocess (as a user does) and prints the wall and CPU time, how much of it the
report took, the import's peak memory, the artifact and report sizes, the parity and the
footprint. Usage: uv run python bench/import_large.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import skops.io
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for `bench`
from bench.report import synthetic

ROWS, CATEGORIES = 20_000, 2_000
WIDE_COLUMNS, CLASSES = 100, 26
# Runs a command and prints its peak resident memory (of it or its largest waited-for child).
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], check=False).returncode\n"
    "print(f'peak_rss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}',"
    " file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _table() -> pd.DataFrame:
    random = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "city": [f"city-{i:04d}" for i in random.integers(0, CATEGORIES, ROWS)],
            "rooms": random.integers(1, 8, ROWS),
            "area": random.normal(80, 25, ROWS).round(1),
            "age": random.integers(0, 100, ROWS),
        }
    )
    effect = {f"city-{i:04d}": random.normal(0, 50) for i in range(CATEGORIES)}
    frame["price"] = (
        frame["area"] * 3 + frame["rooms"] * 10 - frame["age"] * 0.5 + frame["city"].map(effect)
    ).round(2)
    return frame


def _cpu_of_children() -> float:
    times = os.times()
    return times.children_user + times.children_system


def _import(model: Path, sample: Path, out: Path, target: str, *extra: str) -> dict[str, object]:
    started, cpu = time.perf_counter(), _cpu_of_children()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "modelship", "import",
         str(model), "--sample", str(sample), "--target", target, "-o", str(out), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    seconds, cpu = time.perf_counter() - started, _cpu_of_children() - cpu
    report_seconds = float(re.findall(r"The report took ([0-9.]+) s", done.stderr)[0])
    peak_kb = int(re.findall(r"peak_rss_kb=(\d+)", done.stderr)[0])
    card = json.loads((out / "model-card.json").read_text())
    report = sum(p.stat().st_size for p in [out / "model-report.html", *out.glob("report/*")])
    metric = "r2" if card["task"] == "regression" else "macro_f1"
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "report_seconds": report_seconds,
        "report_share_of_wall": f"{report_seconds / seconds:.0%}",
        "peak_rss_mb": round(peak_kb / 1024),
        "source_mb": round(model.stat().st_size / 2**20, 2),
        "onnx_mb": round(card["artifact"]["onnx_bytes"] / 2**20, 2),
        "report_mb": round(report / 1e6, 2),
        "plots": [p["name"] for p in card["report"]["plots"]],
        "parity_max_abs": card["parity"]["max_abs_diff"],
        metric: round(card["metrics"]["test"][metric], 4),
        "footprint": card["footprint"],
    }


def main() -> None:
    frame = _table()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        sample = work / "houses.csv"
        frame.to_csv(sample, index=False)
        x = frame.drop(columns="price")
        encode = OneHotEncoder(handle_unknown="ignore")
        columns = ColumnTransformer(
            [("city", encode, ["city"])], remainder="passthrough", sparse_threshold=0.0
        )
        forest = RandomForestRegressor(n_estimators=30, max_depth=12, n_jobs=1, random_state=0)
        pipeline = Pipeline([("features", columns), ("model", forest)]).fit(x, frame["price"])
        skops.io.dump(pipeline, work / "houses.skops")
        numeric = x.drop(columns="city")
        booster = xgboost.train({"max_depth": 6}, xgboost.DMatrix(numeric, frame["price"]), 200)
        booster.save_model(work / "houses.json")
        numeric.assign(price=frame["price"]).to_csv(work / "numeric.csv", index=False)
        wide = pd.read_csv(
            synthetic(
                work / "wide.csv",
                rows=ROWS,
                classes=CLASSES,
                numeric=WIDE_COLUMNS,
                categorical=0,
                categories=0,
            )
        )
        codes = wide["label"].astype("category").cat.codes
        letters = lightgbm.train(
            {"objective": "multiclass", "num_class": CLASSES, "verbose": -1, "num_threads": 1},
            lightgbm.Dataset(wide.drop(columns="label"), codes),
            30,
        )
        letters.save_model(work / "letters.txt")
        # The booster knows class numbers; the sample's labels are those numbers as text.
        wide.assign(label=codes).to_csv(work / "letters.csv", index=False)
        results = {
            "skops pipeline (2,000-category one-hot + forest), 20,000 rows": _import(
                work / "houses.skops",
                sample,
                work / "a",
                "price",
                "--trust",
                "sklearn.tree._tree.Tree",
            ),
            "xgboost booster (200 trees), 20,000 rows x 3": _import(
                work / "houses.json", work / "numeric.csv", work / "b", "price"
            ),
            "lightgbm booster, 26 classes x 30 rounds, 20,000 rows x 100": _import(
                work / "letters.txt", work / "letters.csv", work / "c", "label"
            ),
        }
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name, result in results.items():
        print(f"{name}: {json.dumps(result)}")


if __name__ == "__main__":
    main()
