"""Exact explanations checked against an outside reference: `shap.TreeExplainer` (path-dependent,
its default without background data) on the original scikit-learn model, and additivity."""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

from bench.explain_cost import letters_table
from modelship.build.explanation import record
from modelship.build.training.export import export_onnx, onnx_feeds
from modelship.build.training.models import pipeline_around
from modelship.contracts.card import FeatureKind, Task
from modelship.model.explain import Explainer, Explanations

RELATIVE = 1e-6


def _kinds(frame: pd.DataFrame) -> dict[str, FeatureKind]:
    return {str(c): "numeric" if frame[c].dtype.kind in "if" else "categorical" for c in frame}


def _explained(
    estimator: Any, x: pd.DataFrame, y: pd.Series, task: Task, scaled: bool = False
) -> tuple[Any, Explanations, np.ndarray[Any, Any], Explainer]:
    kinds = _kinds(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = pipeline_around(estimator, kinds, scaled=scaled).fit(x, y)
    onnx_bytes, names = export_onnx(pipeline, kinds, task)
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    recorded = record(
        onnx_bytes, pipeline=pipeline, frame=x, columns=list(x.columns), task=task, classes=classes
    )
    explainer = Explainer(recorded.data, len(x.columns))
    explanations = explainer.explain(onnx_feeds(x, kinds, names))
    owner = np.load(io.BytesIO(recorded.data))["column_of_feature"]
    return pipeline, explanations, owner, explainer


def _by_column(values: np.ndarray[Any, Any], owner: np.ndarray[Any, Any], columns: int) -> Any:
    out = np.zeros((values.shape[0], columns))
    for feature, column in enumerate(owner):
        out[:, column] += values[:, feature]
    return out


def _close(ours: np.ndarray[Any, Any], theirs: np.ndarray[Any, Any]) -> None:
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= RELATIVE * scale, np.abs(ours - theirs).max() / scale


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
        RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0),
        ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_regression_trees_match_shap(estimator: Any, insurance_frame: pd.DataFrame) -> None:
    x = insurance_frame.drop(columns="charges")
    y = insurance_frame["charges"]
    pipeline, ours, owner, _ = _explained(estimator, x, y, "regression")
    features = pipeline[:-1].transform(x).astype(np.float32)
    reference = shap.TreeExplainer(pipeline[-1])
    theirs = _by_column(reference.shap_values(features, check_additivity=False), owner, x.shape[1])
    _close(ours.contributions[:, :, 0], theirs)
    # The ONNX graph stores the initial prediction as float32: the base agrees to that precision.
    assert ours.base[0] == pytest.approx(float(np.ravel(reference.expected_value)[0]), rel=1e-6)
    predicted = pipeline.predict(x)
    total = ours.base[0] + ours.contributions[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(total, predicted, rtol=1e-5)


def test_forest_classifier_matches_shap_per_class(insurance_frame: pd.DataFrame) -> None:
    """A forest adds (averages) probabilities: one explanation per class, in probabilities."""
    x = insurance_frame.drop(columns="region")
    y = insurance_frame["region"]
    estimator = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)
    pipeline, ours, owner, explainer = _explained(estimator, x, y, "classification")
    assert explainer.outputs == sorted(y.unique())
    features = pipeline[:-1].transform(x).astype(np.float32)
    theirs = shap.TreeExplainer(pipeline[-1]).shap_values(features, check_additivity=False)
    for k in range(len(explainer.outputs)):
        _close(ours.contributions[:, :, k], _by_column(theirs[:, :, k], owner, x.shape[1]))
    total = ours.base + ours.contributions.sum(axis=1)
    np.testing.assert_allclose(total, pipeline.predict_proba(x), atol=1e-5)


def test_boosted_binary_classifier_matches_shap_in_log_odds(insurance_frame: pd.DataFrame) -> None:
    x = insurance_frame.drop(columns="smoker")
    y = insurance_frame["smoker"]
    estimator = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0)
    pipeline, ours, owner, explainer = _explained(estimator, x, y, "classification")
    assert explainer.outputs == ["yes"]  # the positive class: probability = logistic(margin)
    assert "logistic" in explainer.output_space
    features = pipeline[:-1].transform(x).astype(np.float32)
    theirs = shap.TreeExplainer(pipeline[-1]).shap_values(features, check_additivity=False)
    _close(ours.contributions[:, :, 0], _by_column(theirs, owner, x.shape[1]))
    total = ours.base[0] + ours.contributions[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(total, pipeline.decision_function(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_linear_models_are_coefficients_against_the_training_means(
    task: Task, insurance_frame: pd.DataFrame
) -> None:
    target = "charges" if task == "regression" else "region"
    x = insurance_frame.drop(columns=target)
    y = insurance_frame[target]
    estimator = Ridge() if task == "regression" else LogisticRegression(max_iter=1000)
    pipeline, ours, owner, _ = _explained(estimator, x, y, task, scaled=True)
    features = pipeline[:-1].transform(x)
    # shap's own linear explainer, with all the training rows as its background (its means;
    # shap's default masker would subsample 100 of them).
    background = shap.maskers.Independent(features, max_samples=len(features))
    reference = shap.LinearExplainer(pipeline[-1], background)
    theirs = np.asarray(reference.shap_values(features))
    if task == "regression":
        _close(ours.contributions[:, :, 0], _by_column(theirs, owner, x.shape[1]))
        total = ours.base[0] + ours.contributions[:, :, 0].sum(axis=1)
        # The features reach the model as float32 (as in ONNX): 1e-7 of the target's spread.
        np.testing.assert_allclose(total, pipeline.predict(x), atol=1e-7 * float(y.std()))
    else:
        for k in range(theirs.shape[-1]):
            _close(ours.contributions[:, :, k], _by_column(theirs[:, :, k], owner, x.shape[1]))
        total = ours.base + ours.contributions.sum(axis=1)
        np.testing.assert_allclose(total, pipeline.decision_function(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosters_match_shap_on_their_own_models(
    library: str, insurance_frame: pd.DataFrame
) -> None:
    """LightGBM and XGBoost: covers from their own tree dumps, matched to the ONNX trees."""
    from lightgbm import LGBMRegressor
    from xgboost import XGBRegressor

    x = insurance_frame.drop(columns="charges")
    y = insurance_frame["charges"]
    estimator = (
        LGBMRegressor(n_estimators=50, num_leaves=15, verbose=-1, random_state=0)
        if library == "lightgbm"
        else XGBRegressor(n_estimators=50, max_depth=4, random_state=0)
    )
    pipeline, ours, owner, _ = _explained(estimator, x, y, "regression")
    features = pipeline[:-1].transform(x).astype(np.float32)
    reference = shap.TreeExplainer(pipeline[-1], feature_perturbation="tree_path_dependent")
    theirs = _by_column(reference.shap_values(features, check_additivity=False), owner, x.shape[1])
    _close(ours.contributions[:, :, 0], theirs)
    total = ours.base[0] + ours.contributions[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(total, pipeline.predict(x), rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_histogram_boosting_matches_shap(task: Task, insurance_frame: pd.DataFrame) -> None:
    """Exact since its export decides every split as scikit-learn does (thresholds.py)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    target = "charges" if task == "regression" else "region"
    x = insurance_frame.drop(columns=target)
    y = insurance_frame[target]
    estimator = (
        HistGradientBoostingRegressor(max_iter=50, random_state=0)
        if task == "regression"
        else HistGradientBoostingClassifier(max_iter=30, random_state=0)
    )
    pipeline, ours, owner, explainer = _explained(estimator, x, y, task)
    # Its trees compare float64 values, the service's trees the float32-rounded inputs: the
    # export's thresholds decide as scikit-learn does on the values the user sent (thresholds.py),
    # so shap and the model get the rows as the user has them.
    served = x
    features = pipeline[:-1].transform(served)
    theirs = np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(features))
    if task == "regression":
        _close(ours.contributions[:, :, 0], _by_column(theirs, owner, x.shape[1]))
        total = ours.base[0] + ours.contributions[:, :, 0].sum(axis=1)
        np.testing.assert_allclose(total, pipeline.predict(served), rtol=1e-5)
        return
    assert "log-odds" in explainer.output_space
    for k in range(theirs.shape[-1]):
        _close(ours.contributions[:, :, k], _by_column(theirs[:, :, k], owner, x.shape[1]))
    total = ours.base + ours.contributions.sum(axis=1)
    np.testing.assert_allclose(total, pipeline.decision_function(served), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_26_classes_and_300_categories_match_shap() -> None:
    """A 20,000-row, 26-class LightGBM with a 300-category column: per class, in log-odds, the
    300 one-hot features summed back to their column."""
    from lightgbm import LGBMClassifier

    x, y = letters_table(20_000)
    estimator = LGBMClassifier(n_estimators=10, num_leaves=15, verbose=-1, random_state=0)
    kinds = _kinds(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = pipeline_around(estimator, kinds).fit(x, y)
    onnx_bytes, names = export_onnx(pipeline, kinds, "classification")
    classes = [str(c) for c in pipeline.classes_]
    recorded = record(
        onnx_bytes, pipeline=pipeline, frame=x, columns=list(x.columns), task="classification",
        classes=classes,
    )  # fmt: skip
    explainer = Explainer(recorded.data, len(x.columns))
    rows = x.head(300)
    ours = explainer.explain(onnx_feeds(rows, kinds, names))
    owner = np.load(io.BytesIO(recorded.data))["column_of_feature"]
    assert list(np.unique(owner)) == [0, 1, 2, 3, 4, 5, 6]  # 306 features, 7 columns
    features = pipeline[:-1].transform(rows).astype(np.float32)
    reference = shap.TreeExplainer(pipeline[-1], feature_perturbation="tree_path_dependent")
    theirs = np.asarray(reference.shap_values(features, check_additivity=False))
    for k in range(26):
        _close(ours.contributions[:, :, k], _by_column(theirs[:, :, k], owner, x.shape[1]))
    margins = pipeline[-1].predict(pipeline[:-1].transform(rows), raw_score=True)
    np.testing.assert_allclose(ours.base + ours.contributions.sum(axis=1), margins, atol=1e-4)
