"""Exports whose features sit on split thresholds decide every split as the source model does.

The feature takes 8 consecutive float32 values; each split between two of them is at their
float64 midpoint, which float32 cannot hold and which rounds up for every other pair. Converted
as is, a row at the rounded value goes left in ONNX and right in the source model."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from modelship.build.training.export import export_onnx, onnx_feeds, run_onnx
from modelship.build.training.models import pipeline_around
from modelship.contracts.card import FeatureKind, Task


def _on_thresholds() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    start = np.nextafter(np.float32(1.0), np.float32(2.0))  # odd last bit: midpoints round up
    values = [start]
    for _ in range(7):
        values.append(np.nextafter(values[-1], np.float32(2.0)))
    steps = np.array(values, dtype=np.float32).astype(np.float64)
    rng = np.random.default_rng(0)
    v = rng.choice(steps, 2_000)
    # Every input is a float32 value, so the rows reach the trees as scikit-learn sees them.
    w = rng.normal(size=2_000).astype(np.float32).astype(np.float64)
    return pd.DataFrame({"v": v, "w": w}), np.searchsorted(steps, v) * 10.0 + w


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingRegressor(max_iter=20, random_state=0),
        LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
        LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_splits_on_float64_thresholds_decide_as_the_source(estimator: Any) -> None:
    x, y = _on_thresholds()
    task: Task = "regression" if "Regressor" in type(estimator).__name__ else "classification"
    target = y if task == "regression" else (y // 10 % 3).astype(int).astype(str)
    kinds: dict[str, FeatureKind] = {"v": "numeric", "w": "numeric"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = pipeline_around(estimator, kinds).fit(x, target)
    onnx_bytes, names = export_onnx(pipeline, kinds, task)
    outputs = run_onnx(onnx_bytes, onnx_feeds(x, kinds, names))
    if task == "regression":
        # float32 sums of the leaves; one flipped split moves a row by about 10
        np.testing.assert_allclose(outputs[0].ravel(), pipeline.predict(x), atol=1e-4)
    else:
        np.testing.assert_allclose(outputs[1], pipeline.predict_proba(x), atol=1e-5)
        assert (outputs[0].astype(str) == pipeline.predict(x)).all()
