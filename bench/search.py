"""The model search against FLAML at the same wall time, on the same 80/20 split.

    uv run python -m bench.search [--tables insurance,digits,letters,wide] [--repeat 1]
                                  [--budget 30s] [--out DIR]

For each table, `modelship train` runs with its defaults as a user runs it (a subprocess: start-up,
search, export, explanation, report and write all count; only the capacity step is left out, see
run_modelship), then FLAML 2.8 with
`AutoML(time_budget=<modelship's measured wall time>)` (search only, as FLAML's budget means) on
the same training rows; both are scored on the same held-out 20% (`train_test_split` with
modelship's seed 42, stratified for classes, exactly as `modelship train` splits). With --repeat N
the two alternate (modelship, FLAML, modelship, FLAML, ...) so that both meet the same load.

Tables: `insurance` (the bundled data, regression, R²), `digits` (scikit-learn's, 1,797 rows of
64 pixels, 10 classes), `letters` (20,000 rows, 16 numeric features, 26 balanced classes:
bench/training.py's table) and `wide` (10,000 rows, 8 numeric and 24 categorical columns of 5 to
200 categories, 2 classes), all made deterministically. Classification is scored by test
accuracy. Prints one line per run and a table at the end; note the load average it prints.
Each `modelship train` output is kept in DIR/<table>-model.log (what was searched, and why).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split

from bench.training import many_classes_table

REPOSITORY = Path(__file__).resolve().parent.parent
SEED = 42  # modelship train's default --seed: the split below is the one it makes
TEST_SIZE = 0.2


def insurance() -> tuple[pd.DataFrame, str, str]:
    frame = pd.read_csv(REPOSITORY / "service/src/modelship/data/insurance.csv")
    return frame, "charges", "regression"


def digits() -> tuple[pd.DataFrame, str, str]:
    data = load_digits()
    frame = pd.DataFrame(data.data, columns=[f"p{i:02d}" for i in range(data.data.shape[1])])
    frame["digit"] = [f"d{v}" for v in data.target]
    return frame, "digit", "classification"


def letters() -> tuple[pd.DataFrame, str, str]:
    return many_classes_table(), "letter", "classification"


def wide(rows: int = 10_000) -> tuple[pd.DataFrame, str, str]:
    """Many categorical columns of many categories, each category with its own effect, a few
    numeric columns and one interaction; the label is the sign of the sum plus noise."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame()
    logit = np.zeros(rows)
    for i in range(8):
        values = rng.normal(size=rows)
        frame[f"n{i}"] = np.round(values, 3)
        logit += values * rng.normal(scale=0.5)
    for i in range(24):
        categories = int(rng.choice([5, 12, 30, 80, 200]))
        # Category frequencies follow Zipf's law, as real categories do.
        weights = 1 / np.arange(1, categories + 1)
        codes = rng.choice(categories, size=rows, p=weights / weights.sum())
        frame[f"c{i}"] = [f"c{i}_{code}" for code in codes]
        logit += rng.normal(scale=0.6, size=categories)[codes]
    logit += 0.8 * frame["n0"] * (frame["c0"] == "c0_0")
    noisy = logit + rng.logistic(size=rows)
    frame["label"] = np.where(noisy > np.median(noisy), "yes", "no")
    return frame, "label", "classification"


TABLES: dict[str, Callable[[], tuple[pd.DataFrame, str, str]]] = {
    "insurance": insurance,
    "digits": digits,
    "letters": letters,
    "wide": wide,
}


def split(frame: pd.DataFrame, target: str, task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = frame[target].astype(str) if task == "classification" else None
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED, stratify=stratify)
    return train, test


def run_modelship(data: Path, target: str, out: Path, budget: str | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "modelship", "train", "--data", str(data)]
    # --no-capacity: the capacity step measures the deployment (a confined server under load),
    # not the search, and FLAML has no such step: counting it would hand FLAML that time.
    command += ["--target", target, "-o", str(out), "--no-capacity"]
    if budget:
        command += ["--time-budget", budget]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"modelship train failed:\n{done.stdout}\n{done.stderr}")
    card = json.loads((out / "model-card.json").read_text())
    test = card["metrics"]["test"]
    return {
        "tool": "modelship",
        "seconds": seconds,
        "score": test["r2"] if card["task"] == "regression" else test["accuracy"],
        "model": card["model"]["kind"],
        "mb": card["footprint"]["model_bytes"] / 2**20,
        "search_seconds": card["search"]["seconds"],
    }


def run_flaml(frame: pd.DataFrame, target: str, task: str, budget: float) -> dict[str, Any]:
    from flaml import AutoML  # type: ignore[attr-defined]  # a dev dependency: the reference

    train, test = split(frame, target, task)
    x_train, y_train = train.drop(columns=[target]), train[target]
    x_test, y_test = test.drop(columns=[target]), test[target]
    for column in x_train.columns:
        if x_train[column].dtype == object:
            kinds = pd.CategoricalDtype(sorted(frame[column].unique()))
            x_train[column] = x_train[column].astype(kinds)
            x_test[column] = x_test[column].astype(kinds)
    automl = AutoML()  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    automl.fit(
        x_train,
        y_train,
        task=task,
        time_budget=budget,
        metric="r2" if task == "regression" else "accuracy",
        n_jobs=2,
        seed=SEED,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    predicted = automl.predict(x_test)
    score = (
        r2_score(y_test, predicted) if task == "regression" else accuracy_score(y_test, predicted)
    )
    return {
        "tool": f"flaml time_budget={budget:.0f}",
        "seconds": seconds,
        "score": float(score),
        "model": str(automl.best_estimator),
        "mb": len(pickle.dumps(automl.model.estimator)) / 2**20,  # pickled, not ONNX
        "search_seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="modelship/FLAML pairs per table")
    parser.add_argument("--budget", help="modelship's --time-budget (default: its default)")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "modelship-bench-search"
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.tables.split(",") if n.strip()]
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    rows: list[dict[str, Any]] = []
    for name in names:
        frame, target, task = TABLES[name]()
        data = args.out / f"{name}.csv"
        frame.to_csv(data, index=False)
        for _ in range(args.repeat):
            ours = run_modelship(data, target, args.out / f"{name}-model", args.budget)
            theirs = run_flaml(frame, target, task, ours["seconds"])
            for row in (ours, theirs):
                row["table"] = name
                row["metric"] = "R²" if task == "regression" else "accuracy"
                rows.append(row)
                print(
                    f"{name:<10} {row['tool']:<24} {row['seconds']:6.1f} s  "
                    f"test {row['metric']} {row['score']:.4f}  {row['model']} "
                    f"({row['mb']:.2f} MB)  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()}")
    print("\n| table | tool | wall time | test score | model | size |")
    print("|---|---|---:|---:|---|---:|")
    for row in rows:
        print(
            f"| {row['table']} | {row['tool']} | {row['seconds']:.1f} s | "
            f"{row['metric']} {row['score']:.4f} | {row['model']} | {row['mb']:.2f} MB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
