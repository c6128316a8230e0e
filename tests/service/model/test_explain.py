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
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from bench.search import wide
from bench.training import many_classes_table
from modelship.build.explanation import record
from modelship.build.training.data import BUNDLED_DATA
from modelship.build.training.export import export_onnx, onnx_feeds
from modelship.build.training.models import LabelledXGBClassifier, pipeline_around
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
    # XGBoost compares float32 values, LightGBM (and its export) float64 ones.
    features = pipeline[:-1].transform(x).astype(np.float32 if library == "xgboost" else float)
    reference = shap.TreeExplainer(pipeline[-1], feature_perturbation="tree_path_dependent")
    theirs = _by_column(reference.shap_values(features, check_additivity=False), owner, x.shape[1])
    _close(ours.contributions[:, :, 0], theirs)
    total = ours.base[0] + ours.contributions[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(total, pipeline.predict(x), rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_histogram_boosting_matches_shap(task: Task, insurance_frame: pd.DataFrame) -> None:
    """Exact since its export compares float64 values with scikit-learn's float64 thresholds
    (thresholds.py)."""
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
    # Its trees compare float64 values, and so do the service's (thresholds.py): shap and the
    # model get the rows as the user has them.
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


# Every family on every table: the insurance data (regression), a 20,000-row 26-class table and
# a wide table of 24 columns of up to 200 categories (two classes). The families that take
# missing values natively get a pipeline without imputation and numbers missing at random, so
# that their trees' missing-value branches are taken; the others get the training menu's pipeline.
MISSING_SHARE = 0.1
EXPLAINED_ROWS = 30


def _insurance_table() -> tuple[pd.DataFrame, pd.Series, Task]:
    frame = pd.read_csv(BUNDLED_DATA)
    return frame.drop(columns="charges"), frame["charges"], "regression"


def _letters_table() -> tuple[pd.DataFrame, pd.Series, Task]:
    frame = many_classes_table(20_000)
    return frame.drop(columns="letter"), frame["letter"], "classification"


def _wide_table() -> tuple[pd.DataFrame, pd.Series, Task]:
    frame, target, _ = wide(rows=1_000)
    return frame.drop(columns=target), frame[target], "classification"


TABLES = {
    "insurance": _insurance_table,
    "letters-26-classes": _letters_table,
    "wide-categories": _wide_table,
}


def _family(name: str, task: Task) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )
    from xgboost import XGBRegressor

    regression = task == "regression"
    families: dict[str, Any] = {
        "gradient-boosting": (
            GradientBoostingRegressor if regression else GradientBoostingClassifier
        )(n_estimators=20 if regression else 3, max_depth=3, random_state=0),
        "random-forest": (RandomForestRegressor if regression else RandomForestClassifier)(
            n_estimators=5, max_depth=6, random_state=0
        ),
        "extra-trees": (ExtraTreesRegressor if regression else ExtraTreesClassifier)(
            n_estimators=5, max_depth=6, random_state=0
        ),
        "histogram-boosting": (
            HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        )(max_iter=10, random_state=0),
        "lightgbm": (LGBMRegressor if regression else LGBMClassifier)(
            n_estimators=10, num_leaves=15, verbose=-1, random_state=0
        ),
        "xgboost": (XGBRegressor if regression else LabelledXGBClassifier)(
            n_estimators=10, max_depth=4, random_state=0
        ),
    }
    return families[name]


TAKES_MISSING = {"histogram-boosting", "lightgbm", "xgboost"}


def _with_missing_numbers(x: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    numbers = [c for c in x if x[c].dtype.kind in "if"]
    x = x.astype(dict.fromkeys(numbers, np.float64))
    for column in numbers:
        x.loc[rng.random(len(x)) < MISSING_SHARE, column] = np.nan
    return x


def _without_imputation(estimator: Any, kinds: dict[str, FeatureKind]) -> Pipeline:
    """Numbers passed through as they are (missing ones too), categories one-hot encoded."""
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    features = ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", encoder, categorical)],
        sparse_threshold=0.0,
    )
    return Pipeline([("features", features), ("model", estimator)])


def _reference(estimator: Any, features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """shap's path-dependent TreeSHAP on the source model: [rows, features, outputs]."""
    if isinstance(estimator, GradientBoostingClassifier) and estimator.estimators_.shape[1] > 1:
        # shap reads only two-class gradient boosting: one shap tree ensemble per class, from
        # scikit-learn's own trees (values scaled by the learning rate, as the model adds them).
        per_class = [
            shap.TreeExplainer(
                {"trees": [_shap_tree(t.tree_, estimator.learning_rate) for t in trees]},
                feature_perturbation="tree_path_dependent",
            ).shap_values(features, check_additivity=False)
            for trees in estimator.estimators_.T
        ]
        return np.stack(per_class, axis=-1)
    explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    theirs = np.asarray(explainer.shap_values(features, check_additivity=False))
    if theirs.ndim == 3 and theirs.shape[0] != len(features):  # one [rows, features] per class
        theirs = theirs.transpose(1, 2, 0)
    return theirs.reshape(len(features), features.shape[1], -1)


def _shap_tree(tree: Any, scale: float) -> dict[str, Any]:
    return {
        "children_left": tree.children_left,
        "children_right": tree.children_right,
        "children_default": tree.children_left,
        "features": tree.feature,
        "thresholds": tree.threshold,
        "values": tree.value[:, :, 0] * scale,
        "node_sample_weight": tree.weighted_n_node_samples,
    }


def _model_space(estimator: Any, features: np.ndarray[Any, Any], task: Task) -> Any:
    """The source model's answer in the space its trees add in: [rows, outputs]."""
    if task == "regression":
        answer = estimator.predict(features)
    elif isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier):
        answer = estimator.predict_proba(features)
    elif hasattr(estimator, "booster_"):  # LightGBM
        answer = estimator.predict(features, raw_score=True)
    elif hasattr(estimator, "get_booster"):  # XGBoost
        answer = estimator.get_booster().inplace_predict(features, predict_type="margin")
    else:
        answer = estimator.decision_function(features)
    return np.asarray(answer).reshape(len(features), -1)


@pytest.mark.parametrize(
    "family", sorted(["gradient-boosting", "random-forest", "extra-trees", *TAKES_MISSING])
)
@pytest.mark.parametrize(
    "table",
    [
        "insurance",
        pytest.param("letters-26-classes", marks=pytest.mark.slow),
        "wide-categories",
    ],
)
def test_every_family_matches_shap_on_every_table(table: str, family: str) -> None:
    """Per column and output, to 1e-6 relative; base + contributions = the model's own answer
    in the space it adds in, on every row explained."""
    x, y, task = TABLES[table]()
    estimator = _family(family, task)
    kinds = _kinds(x)
    if family in TAKES_MISSING:
        x = _with_missing_numbers(x)
        pipeline = _without_imputation(estimator, kinds)
    else:
        pipeline = pipeline_around(estimator, kinds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(x, y)
    onnx_bytes, names = export_onnx(pipeline, kinds, task)
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    recorded = record(
        onnx_bytes, pipeline=pipeline, frame=x, columns=list(x.columns), task=task, classes=classes
    )
    explainer = Explainer(recorded.data, len(x.columns))
    rows = x.head(EXPLAINED_ROWS)
    if family in TAKES_MISSING:
        assert rows.isna().any(axis=None)
    ours = explainer.explain(onnx_feeds(rows, kinds, names))
    owner = np.load(io.BytesIO(recorded.data))["column_of_feature"]

    features = pipeline[:-1].transform(rows).astype(np.float64)
    if family not in ("histogram-boosting", "lightgbm"):
        # The served trees see numbers as float32, as scikit-learn's trees and XGBoost's do;
        # histogram boosting and LightGBM compare float64 values with float64 thresholds, and so
        # does their export (build/training/thresholds.py).
        features = features.astype(np.float32).astype(np.float64)
    theirs = _reference(pipeline[-1], features)
    answers = _model_space(pipeline[-1], features, task)
    if len(explainer.outputs) == 1 and theirs.shape[2] == 2:
        # A two-class forest is served as the second class's probability (the first is 1 - it).
        assert explainer.outputs == [str(pipeline.classes_[1])]
        theirs, answers = theirs[:, :, 1:], answers[:, 1:]
    assert ours.contributions.shape == (len(rows), x.shape[1], theirs.shape[2])
    for k in range(theirs.shape[2]):
        _close(ours.contributions[:, :, k], _by_column(theirs[:, :, k], owner, x.shape[1]))
    total = ours.base + ours.contributions.sum(axis=1)
    np.testing.assert_allclose(total, answers, rtol=1e-5, atol=1e-5 * np.abs(answers).max())
