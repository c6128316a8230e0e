"""The model menu: candidates per task and the preprocessing pipeline around them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from modelship.card import Task


@dataclass(frozen=True)
class Candidate:
    key: str
    description: str
    build: Callable[[int], Any]
    # Trees split on raw values: scaling gains nothing and, done in float32 by ONNX, moves
    # values across split thresholds. So only the other models get scaling and polynomials.
    scaled: bool


REGRESSION: dict[str, Candidate] = {
    c.key: c
    for c in [
        Candidate(
            "ridge", "linear regression with L2 penalty", lambda seed: Ridge(alpha=1.0), True
        ),
        Candidate(
            "random_forest",
            "random forest, 200 trees",
            lambda seed: RandomForestRegressor(
                n_estimators=200, min_samples_leaf=2, n_jobs=-1, random_state=seed
            ),
            False,
        ),
        Candidate(
            "gradient_boosting",
            "gradient boosting, 200 shallow trees",
            lambda seed: GradientBoostingRegressor(
                n_estimators=200, max_depth=3, learning_rate=0.05, random_state=seed
            ),
            False,
        ),
        Candidate(
            "hist_gradient_boosting",
            "histogram gradient boosting",
            lambda seed: HistGradientBoostingRegressor(random_state=seed),
            False,
        ),
    ]
}

CLASSIFICATION: dict[str, Candidate] = {
    c.key: c
    for c in [
        Candidate(
            "logistic",
            "logistic regression",
            lambda seed: LogisticRegression(max_iter=2000, random_state=seed),
            True,
        ),
        Candidate(
            "random_forest",
            "random forest, 200 trees",
            lambda seed: RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=seed),
            False,
        ),
        Candidate(
            "gradient_boosting",
            "gradient boosting, 100 trees",
            lambda seed: GradientBoostingClassifier(random_state=seed),
            False,
        ),
        Candidate(
            "lda", "linear discriminant analysis", lambda seed: LinearDiscriminantAnalysis(), True
        ),
        Candidate(
            "mlp",
            "small neural network (one hidden layer of 32)",
            lambda seed: MLPClassifier(hidden_layer_sizes=(32,), max_iter=2000, random_state=seed),
            True,
        ),
    ]
}

MENU: dict[Task, dict[str, Candidate]] = {
    "regression": REGRESSION,
    "classification": CLASSIFICATION,
}


def build_pipeline(
    candidate: Candidate,
    numeric: list[str],
    categorical: list[str],
    polynomial_degree: int | None,
    seed: int,
) -> Pipeline:
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if candidate.scaled:
        numeric_steps.append(("scale", StandardScaler()))
        if polynomial_degree and polynomial_degree > 1:
            numeric_steps.append(
                ("poly", PolynomialFeatures(degree=polynomial_degree, include_bias=False))
            )
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        # Missing text is its own category (""), unseen categories encode as all zeros.
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers, sparse_threshold=0.0)),
            ("model", candidate.build(seed)),
        ]
    )
