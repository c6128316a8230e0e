"""Model quality metrics in plain numpy, shared by training and by `/score`.

Kept free of scikit-learn so the serving image does not need it; the tests check every
function against scikit-learn's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

LOG_LOSS_EPS = 1e-15


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float | None]:
    truth = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    residual = truth - pred
    total = float(np.sum((truth - truth.mean()) ** 2))
    r2 = None if total == 0.0 else 1.0 - float(np.sum(residual**2)) / total
    return {
        "r2": r2,
        "mae": float(np.mean(np.abs(residual))),
        "rmse": math.sqrt(float(np.mean(residual**2))),
    }


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probabilities: npt.NDArray[Any],
    classes: list[str],
) -> dict[str, Any]:
    """Accuracy, macro F1, log-loss and a per-class report (precision, recall, F1, support).

    Labels in `y_true` that the model never saw count as wrong and appear in the report.
    """
    truth = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    labels = list(classes) + sorted(set(truth.tolist()) - set(classes))
    report: dict[str, dict[str, float]] = {}
    for label in labels:
        true_pos = int(np.sum((pred == label) & (truth == label)))
        predicted = int(np.sum(pred == label))
        support = int(np.sum(truth == label))
        precision = true_pos / predicted if predicted else 0.0
        recall = true_pos / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    present = [label for label in labels if report[label]["support"] or np.any(pred == label)]
    index = {label: i for i, label in enumerate(classes)}
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), LOG_LOSS_EPS, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    picked = np.array(
        [
            probs[row, index[label]] if label in index else LOG_LOSS_EPS
            for row, label in enumerate(truth)
        ]
    )
    return {
        "accuracy": float(np.mean(truth == pred)),
        "macro_f1": float(np.mean([report[label]["f1"] for label in present])),
        "log_loss": float(-np.mean(np.log(np.clip(picked, LOG_LOSS_EPS, 1.0)))),
        "per_class": report,
    }
