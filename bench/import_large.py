"""`modelship import` on more than toy data: 20,000 rows, a text column with 2,000 categories.

Fits a scikit-learn pipeline (one-hot + random forest) and an XGBoost booster,
saves them as skops / JSON, runs `modelship import` on each as a subprocess and prints the time,
the artifact size, the parity and the footprint. Usage: uv run python bench/import_large.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

ROWS, CATEGORIES = 20_000, 2_000


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


def _import(model: Path, sample: Path, out: Path, *extra: str) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "modelship", "import", str(model), "--sample", str(sample),
         "--target", "price", "-q", "-o", str(out), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    card = json.loads((out / "model-card.json").read_text())
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "source_mb": round(model.stat().st_size / 2**20, 2),
        "onnx_mb": round(card["artifact"]["onnx_bytes"] / 2**20, 2),
        "parity_max_abs": card["parity"]["max_abs_diff"],
        "r2": round(card["metrics"]["test"]["r2"], 4),
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
        results = {
            "skops pipeline (2,000-category one-hot + forest)": _import(
                work / "houses.skops", sample, work / "a", "--trust", "sklearn.tree._tree.Tree"
            ),
            "xgboost booster (200 trees)": _import(
                work / "houses.json", work / "numeric.csv", work / "b"
            ),
        }
    for name, result in results.items():
        print(f"{name}: {json.dumps(result)}")


if __name__ == "__main__":
    main()
