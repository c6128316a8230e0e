"""What an exact explanation costs per row, against the prediction alone (docs/service.md#explain).

    uv run python -m bench.explain_cost              # the three models of docs/service.md
    uv run python -m bench.explain_cost --repeats 50 # the command of docs/service.md#explain

Three models, as the issue asked: 100-tree gradient boosting and 500-tree LightGBM on the bundled
insurance data, and a 26-class LightGBM (100 rounds x 26 classes, 15 leaves: the menu's sizing for
many classes) on a synthetic 20,000-row table. Each is exported and its explanation recorded as
`modelship train` does; then, in this process with one onnxruntime thread (as a worker runs it),
the median of `repeats` calls of: the prediction alone (the ONNX session), and the prediction
plus its explanation (`Explainer.explain`, which runs the features graph and the engine), for one
row and for a 1,000-row batch. The machine should be quiet: wall time is what is measured.
"""

from __future__ import annotations

import argparse
import statistics
import string
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.ensemble import GradientBoostingRegressor

from modelship.build.explanation import record
from modelship.build.training.data import BUNDLED_DATA
from modelship.build.training.export import export_onnx, onnx_feeds
from modelship.build.training.models import pipeline_around
from modelship.contracts.card import FeatureKind, Task
from modelship.model.explain import Explainer


def letters_table(rows: int = 20_000) -> tuple[pd.DataFrame, pd.Series]:
    """26 classes, six numbers and a text column of 300 categories (300 one-hot features)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 26, rows)
    centers = rng.normal(0, 2.5, (26, 6))
    frame = pd.DataFrame(
        (centers[labels] + rng.normal(0, 1.2, (rows, 6))).round(3),
        columns=[f"x{i}" for i in range(6)],
    )
    frame["shop"] = [f"shop-{i:03d}" for i in rng.integers(0, 300, rows)]
    return frame, pd.Series([string.ascii_uppercase[i] for i in labels])


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def measure(
    name: str, estimator: Any, x: pd.DataFrame, y: pd.Series, *, task: Task, repeats: int
) -> None:
    kinds: dict[str, FeatureKind] = {
        str(c): "numeric" if x[c].dtype.kind in "if" else "categorical" for c in x
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = pipeline_around(estimator, kinds).fit(x, y)
    onnx_bytes, names = export_onnx(pipeline, kinds, task)
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    started = time.perf_counter()
    recorded = record(
        onnx_bytes, pipeline=pipeline, frame=x, columns=list(x.columns), task=task, classes=classes
    )
    record_s = time.perf_counter() - started
    started = time.perf_counter()
    explainer = Explainer(recorded.data, len(x.columns))
    load_s = time.perf_counter() - started
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    print(
        f"{name}: model {len(onnx_bytes) / 1e6:.2f} MB, explanation {len(recorded.data) / 1e6:.2f}"
        f" MB; recorded in {record_s:.1f} s, loaded in {load_s:.2f} s"
    )
    for rows in (1, 1_000):
        feeds = onnx_feeds(x.head(rows), kinds, names)

        def alone_call(feeds: dict[str, Any] = feeds) -> Any:
            return session.run(None, feeds)

        def explained_call(feeds: dict[str, Any] = feeds) -> Any:
            return session.run(None, feeds), explainer.explain(feeds)

        alone = _median_ms(alone_call, repeats)
        explained = _median_ms(explained_call, repeats)
        print(
            f"  {rows:>5} row{'s' * (rows > 1)}: predict {alone:8.3f} ms, predict + explain "
            f"{explained:8.3f} ms ({explained / rows:.4f} ms per row)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=100, help="calls per median (default 100)")
    args = parser.parse_args()
    insurance = pd.read_csv(BUNDLED_DATA)
    x, y = insurance.drop(columns="charges"), insurance["charges"]
    measure(
        "gradient boosting, 100 trees",
        GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
        x, y, task="regression", repeats=args.repeats,
    )  # fmt: skip
    measure(
        "LightGBM, 500 trees",
        LGBMRegressor(n_estimators=500, num_leaves=31, verbose=-1, random_state=0),
        x, y, task="regression", repeats=max(5, args.repeats // 10),
    )  # fmt: skip
    letters, labels = letters_table()
    measure(
        "LightGBM, 26 classes x 100 rounds",
        LGBMClassifier(n_estimators=100, num_leaves=15, verbose=-1, random_state=0),
        letters, labels, task="classification", repeats=max(3, args.repeats // 20),
    )  # fmt: skip


if __name__ == "__main__":
    main()
