"""The numbers behind each plot of the training report, in numpy.

Every plot is drawn from these (and they are embedded in the page as JSON), so a test can check
what a plot shows without reading pixels. Large inputs are sampled here, in one place, with a
note that the plot then carries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from modelship.model_quality import classification_metrics, regression_metrics

SCATTER_POINTS = 2_000  # points drawn in a scatter plot: more only add bytes, not information
IMPORTANCE_ROWS = 3_000  # held-out rows the permutation importance is computed on, at most
INTERVENTIONAL_ROWS = 300  # rows the contributions of bare imported trees are averaged over
IMPORTANCE_REPEATS = 5
# Rows predicted in all (features x repeats x rows): the importance's cost grows with the width of
# the table, so wide tables get fewer rows, never fewer than IMPORTANCE_MIN_ROWS: 10 columns keep
# 3,000 rows, 16 keep 1,875, 100 keep 300 (a 100-column LightGBM model with 26 classes spent
# 154 s here at 3,000 rows).
IMPORTANCE_ROW_BUDGET = 150_000
# And at most this long in the model's own predict time, from its measured latency per row: a
# 26-class LightGBM model predicts 1,000 rows in 136 ms, so 150,000 rows cost 20 s, a third of
# the whole training run.
IMPORTANCE_SECONDS = 4.0
IMPORTANCE_MIN_ROWS = 300
HISTOGRAM_BINS = 30
TOP_CATEGORIES = 12  # categories drawn per categorical feature; the rest are one "other" bar
TOP_CLASSES = 30  # classes drawn in the target's panel
CURVE_POINTS = 400  # points kept of a ROC or PR curve
CALIBRATION_BINS = 10

Floats = npt.NDArray[np.float64]
Outputs = tuple[npt.NDArray[Any], npt.NDArray[Any] | None]  # (labels or values, probabilities)
PredictFn = Callable[[pd.DataFrame], Outputs]


@dataclass(frozen=True)
class Sample:
    """Which rows a plot shows: all of them, or an even random sample (said on the plot)."""

    index: npt.NDArray[np.intp]
    total: int

    @property
    def sampled(self) -> bool:
        return len(self.index) < self.total

    def note(self, what: str) -> str | None:
        if not self.sampled:
            return None
        return f"a random sample of {len(self.index):,} of {self.total:,} {what}"


def sample(total: int, limit: int, seed: int = 0) -> Sample:
    if total <= limit:
        return Sample(np.arange(total), total)
    chosen = np.random.default_rng(seed).choice(total, size=limit, replace=False)
    return Sample(np.sort(chosen), total)


def primary_score(task: str) -> str:
    """The metric models are ranked by (as in the model comparison)."""
    return "r2" if task == "regression" else "macro_f1"


def score(task: str, truth: npt.NDArray[Any], outputs: Outputs, classes: list[str] | None) -> float:
    """The primary metric of `outputs` against `truth` (R² or macro F1)."""
    values, probabilities = outputs
    if task == "regression":
        r2 = regression_metrics(truth, values.reshape(-1))["r2"]
        return float("nan") if r2 is None else float(r2)
    assert probabilities is not None and classes is not None
    metrics = classification_metrics(
        list(truth), list(values.astype(str)), probabilities, list(classes)
    )
    return float(metrics["macro_f1"])


def confusion_matrix(
    truth: Sequence[str], predicted: Sequence[str], classes: list[str]
) -> tuple[list[str], list[list[int]]]:
    """Counts[actual][predicted]; labels in the test split the model never saw are appended."""
    truth_array = np.asarray(truth, dtype=object)
    labels = list(classes) + sorted(set(truth_array.tolist()) - set(classes))
    index = {label: i for i, label in enumerate(labels)}
    rows = np.array([index[str(t)] for t in truth_array], dtype=np.intp)
    cols = np.array([index[str(p)] for p in predicted], dtype=np.intp)
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(counts, (rows, cols), 1)
    return labels, counts.tolist()


def calibration(scores: Floats, hits: npt.NDArray[np.bool_]) -> dict[str, list[float]]:
    """Reliability: per equal-width probability bin, mean predicted vs observed frequency."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    counts = np.bincount(which, minlength=CALIBRATION_BINS)
    predicted = np.bincount(which, weights=scores, minlength=CALIBRATION_BINS)
    observed = np.bincount(which, weights=hits.astype(np.float64), minlength=CALIBRATION_BINS)
    filled = counts > 0
    return {
        "edges": edges.tolist(),
        "count": counts.tolist(),
        "mean_predicted": [float(v) for v in predicted[filled] / counts[filled]],
        "observed": [float(v) for v in observed[filled] / counts[filled]],
        "bin": [int(i) for i in np.flatnonzero(filled)],
    }


def _thin(*curves: Floats) -> list[list[float]]:
    """At most CURVE_POINTS points of each curve (same indices), keeping both ends."""
    size = len(curves[0])
    keep = (
        np.unique(np.linspace(0, size - 1, CURVE_POINTS).round().astype(np.intp))
        if size > CURVE_POINTS
        else np.arange(size)
    )
    return [[float(v) for v in curve[keep]] for curve in curves]


def roc_pr(positive: npt.NDArray[np.bool_], scores: Floats) -> dict[str, Any]:
    """ROC and precision-recall curves of a binary classifier, with their areas."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(positive, scores)
    precision, recall, _ = precision_recall_curve(positive, scores)
    roc_fpr, roc_tpr = _thin(fpr, tpr)
    pr_recall, pr_precision = _thin(recall, precision)
    return {
        "roc": {"fpr": roc_fpr, "tpr": roc_tpr, "auc": float(auc(fpr, tpr))},
        "pr": {
            "recall": pr_recall,
            "precision": pr_precision,
            "average_precision": float(average_precision_score(positive, scores)),
            "prevalence": float(positive.mean()),
        },
    }


def importance_rows(features: int, row_ms: float | None = None) -> int:
    """Held-out rows permutation importance uses for a table of `features` columns, for a model
    that predicts one row (in a batch) in `row_ms` milliseconds when that was measured."""
    predictions_per_row = max(features, 1) * IMPORTANCE_REPEATS
    fitting = IMPORTANCE_ROW_BUDGET // predictions_per_row
    if row_ms:
        fitting = min(fitting, int(IMPORTANCE_SECONDS * 1000 / (row_ms * predictions_per_row)))
    return max(IMPORTANCE_MIN_ROWS, min(IMPORTANCE_ROWS, fitting))


def permutation_importance(
    predict: PredictFn,
    *,
    task: str,
    frame: pd.DataFrame,
    truth: npt.NDArray[Any],
    classes: list[str] | None,
    seed: int = 0,
    row_ms: float | None = None,
) -> dict[str, Any]:
    """Drop in the primary metric when one feature's values are shuffled, on the held-out rows.

    Computed on the exported model (what the server runs), on a sample of the held-out split;
    the spread is the standard deviation over the repeats.
    """
    rows = sample(len(frame), importance_rows(len(frame.columns), row_ms), seed)
    data = frame.iloc[rows.index].reset_index(drop=True)
    expected = truth[rows.index]
    baseline = score(task, expected, predict(data), classes)
    rng = np.random.default_rng(seed)
    features: list[dict[str, Any]] = []
    for name in data.columns:
        drops = []
        original = data[name].copy()
        for _ in range(IMPORTANCE_REPEATS):
            data[name] = original.to_numpy()[rng.permutation(len(data))]
            drops.append(baseline - score(task, expected, predict(data), classes))
        data[name] = original
        features.append(
            {"feature": str(name), "mean": float(np.mean(drops)), "std": float(np.std(drops))}
        )
    features.sort(key=lambda item: -item["mean"])
    return {
        "metric": primary_score(task),
        "baseline": baseline,
        "rows": len(rows.index),
        "of_rows": rows.total,
        "repeats": IMPORTANCE_REPEATS,
        "features": features,
    }


def numeric_histogram(column: pd.Series) -> dict[str, Any]:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    present = values[np.isfinite(values)]
    counts, edges = (
        np.histogram(present, bins=HISTOGRAM_BINS) if len(present) else (np.zeros(0), np.zeros(0))
    )
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "missing": int(len(values) - len(present)),
        "rows": len(values),
    }


def category_frequencies(column: pd.Series, shown: int = TOP_CATEGORIES) -> dict[str, Any]:
    counts = column.astype(str).value_counts()
    top = counts.head(shown)
    rest = counts.iloc[shown:]
    return {
        "kind": "categorical",
        "categories": [str(c) for c in top.index],
        "counts": [int(c) for c in top.to_numpy()],
        "other_categories": len(rest),
        "other_count": int(rest.sum()),
        "rows": len(column),
    }


def distribution(column: pd.Series, numeric: bool, shown: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Histogram of a numeric column or frequencies of a categorical one, over every row."""
    return numeric_histogram(column) if numeric else category_frequencies(column, shown)
