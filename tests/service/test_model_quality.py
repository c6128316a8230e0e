"""Our numpy metrics (used by /score, where scikit-learn is not installed) equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from modelship.model_quality import classification_metrics, regression_metrics


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(100, 20, 500)
    pred = truth + rng.normal(0, 5, 500)
    ours = regression_metrics(truth, pred)
    assert ours["r2"] == pytest.approx(skm.r2_score(truth, pred))
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(truth, pred))
    assert ours["rmse"] == pytest.approx(skm.root_mean_squared_error(truth, pred))


def test_r2_of_a_constant_truth_is_undefined() -> None:
    assert regression_metrics([3.0, 3.0], [3.0, 2.0])["r2"] is None


def test_classification_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    raw = rng.dirichlet([1, 1, 1], 300)
    truth = [classes[i] for i in rng.integers(0, 3, 300)]
    pred = [classes[i] for i in raw.argmax(axis=1)]
    ours = classification_metrics(truth, pred, raw, classes)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(truth, pred, average="macro"))
    assert ours["log_loss"] == pytest.approx(skm.log_loss(truth, raw, labels=classes), rel=1e-6)
    report = skm.classification_report(truth, pred, output_dict=True)
    for label in classes:
        assert ours["per_class"][label]["precision"] == pytest.approx(report[label]["precision"])
        assert ours["per_class"][label]["recall"] == pytest.approx(report[label]["recall"])
        assert ours["per_class"][label]["support"] == report[label]["support"]


def test_unseen_labels_count_as_wrong() -> None:
    result = classification_metrics(
        ["a", "z"], ["a", "a"], np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"]
    )
    assert result["accuracy"] == 0.5
    assert result["per_class"]["z"]["support"] == 1
    assert result["per_class"]["z"]["recall"] == 0.0
