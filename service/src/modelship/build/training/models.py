"""The model menu: candidates per task, sized for the data, and the preprocessing around them.

Every candidate here can be exported to ONNX (training/export.py registers the converters of
LightGBM and XGBoost); a family that cannot be exported is not offered. Candidates are listed in
the order the search tries them: strong and cheap first, so a tight time budget skips the
expensive long shots, not the likely winners.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNetCV, LassoCV, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from modelship.contracts.card import FeatureKind, Task

# What an exported tree costs in ONNX (measured on skl2onnx output): each node carries about
# 40 bytes of attributes, and a classifier's leaf one weight entry of about 20 bytes per class.
ONNX_NODE_BYTES = 40
ONNX_LEAF_ENTRY_BYTES = 20
# A forest may use this share of --max-model-mb, so it is never excluded for its size alone.
FOREST_SHARE_OF_MODEL_BUDGET = 0.5
LARGE_DATA_ROWS = 10_000
# Bounds of a booster's rounds under early stopping (models.Sizing.boosting_round_cap).
MAX_BOOSTING_ROUNDS = 1_000
MIN_BOOSTING_ROUNDS = 10


@dataclass(frozen=True)
class Sizing:
    """What a candidate's defaults depend on."""

    rows: int
    classes: int  # 0 for regression
    seed: int
    threads: int
    max_model_bytes: int

    @property
    def large(self) -> bool:
        return self.rows >= LARGE_DATA_ROWS

    @property
    def many_classes(self) -> bool:
        return self.classes > 10

    def forest(self, trees: int) -> dict[str, Any]:
        """Trees bounded so the forest's ONNX file fits its share of the model budget.

        An unbounded forest grows a leaf for every few rows: on 20,000 rows of 26 classes that
        is a 164 MB file and a 1 GB worker.
        """
        per_leaf = 2 * ONNX_NODE_BYTES + max(self.classes, 1) * ONNX_LEAF_ENTRY_BYTES
        budget = self.max_model_bytes * FOREST_SHARE_OF_MODEL_BUDGET
        leaves = int(budget / (trees * per_leaf))
        return {
            "n_estimators": trees,
            "max_leaf_nodes": max(16, min(leaves, self.rows)),
            "min_samples_leaf": 1 if self.rows < 2_000 else 2,
            "n_jobs": self.threads,
            "random_state": self.seed,
        }

    @property
    def boosting_rounds(self) -> int:
        # A multi-class booster grows one tree per class per round.
        return 100 if self.many_classes or self.large else 200

    def boosting_round_cap(self, leaves: int) -> int:
        """Rounds a booster with trees of `leaves` leaves may grow (early stopping usually ends
        it sooner): at most MAX_BOOSTING_ROUNDS, and no more than fit the forests' share of the
        model budget (a multi-class booster grows one tree per class per round)."""
        per_tree = leaves * (2 * ONNX_NODE_BYTES + ONNX_LEAF_ENTRY_BYTES)
        per_round = per_tree * (self.classes if self.classes > 2 else 1)
        fits = int(self.max_model_bytes * FOREST_SHARE_OF_MODEL_BUDGET / per_round)
        return max(MIN_BOOSTING_ROUNDS, min(MAX_BOOSTING_ROUNDS, fits))

    @property
    def boosting_leaves(self) -> int:
        # With many classes the rounds' trees add up (26 per round): smaller ones fit as well
        # (test accuracy 0.9772 vs 0.9768 on 20,000 rows of 26 classes) at 80% of the time,
        # half the model and 70% of the predict time.
        return 15 if self.many_classes else 31


@dataclass(frozen=True)
class Candidate:
    key: str
    description: str
    build: Callable[[Sizing], Any]
    # Trees split on raw values: scaling gains nothing (it would decide the same: the export
    # scales in float64 as scikit-learn does). So only the other models get scaling and
    # polynomials.
    scaled: bool


class LabelledXGBClassifier(XGBClassifier):
    """XGBoost's classifier on any labels: XGBoost itself accepts only 0..n-1.

    `classes_` holds the original labels after fitting, so predictions and the ONNX export
    (whose converter reads `classes_`) speak the labels of the data.
    """

    _labels: npt.NDArray[Any] | None = None

    def fit(self, x: Any, y: Any, **kwargs: Any) -> LabelledXGBClassifier:
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        self._labels = None
        if "eval_set" in kwargs:  # the early-stopping rows speak the same labels
            kwargs["eval_set"] = [
                (rows, np.searchsorted(labels, np.asarray(truth)))
                for rows, truth in kwargs["eval_set"]
            ]
        super().fit(x, codes, **kwargs)
        self._labels = labels
        return self

    @property
    def classes_(self) -> npt.NDArray[Any]:
        if self._labels is not None:
            return self._labels
        return np.arange(self.n_classes_)

    def predict(self, x: Any, **kwargs: Any) -> npt.NDArray[Any]:
        codes = np.asarray(super().predict(x, **kwargs)).astype(int)
        labels: npt.NDArray[Any] = self.classes_[codes]
        return labels


def _lightgbm(sizing: Sizing, kind: type[Any]) -> Any:
    return kind(
        n_estimators=sizing.boosting_rounds,
        learning_rate=0.1,
        num_leaves=sizing.boosting_leaves,
        n_jobs=sizing.threads,
        random_state=sizing.seed,
        verbose=-1,
    )


def _xgboost(sizing: Sizing, kind: type[Any]) -> Any:
    return kind(
        n_estimators=sizing.boosting_rounds,
        learning_rate=0.1,
        max_depth=6,
        tree_method="hist",
        n_jobs=sizing.threads,
        random_state=sizing.seed,
    )


REGRESSION: dict[str, Candidate] = {
    c.key: c
    for c in [
        Candidate("ridge", "linear regression with L2 penalty", lambda s: Ridge(alpha=1.0), True),
        Candidate(
            "gradient_boosting",
            "gradient boosting, 200 shallow trees",
            lambda s: GradientBoostingRegressor(
                n_estimators=200, max_depth=3, learning_rate=0.05, random_state=s.seed
            ),
            False,
        ),
        Candidate(
            "hist_gradient_boosting",
            "histogram gradient boosting (early stopping on 10,000+ rows)",
            lambda s: HistGradientBoostingRegressor(random_state=s.seed),
            False,
        ),
        Candidate(
            "lightgbm",
            "LightGBM, 31 leaves per tree (15 with more than 10 classes)",
            lambda s: _lightgbm(s, LGBMRegressor),
            False,
        ),
        Candidate("xgboost", "XGBoost, depth 6", lambda s: _xgboost(s, XGBRegressor), False),
        Candidate(
            "random_forest",
            "random forest, trees bounded to the model budget",
            lambda s: RandomForestRegressor(**s.forest(100 if s.large else 200)),
            False,
        ),
        Candidate(
            "extra_trees",
            "extremely randomised trees, bounded to the model budget",
            lambda s: ExtraTreesRegressor(**s.forest(100 if s.large else 200)),
            False,
        ),
        Candidate(
            "lasso",
            "linear regression with L1 penalty (strength chosen by inner 3-fold CV)",
            lambda s: LassoCV(cv=3, max_iter=5_000, random_state=s.seed),
            True,
        ),
        Candidate(
            "elastic_net",
            "linear regression with L1 and L2 penalties (chosen by inner 3-fold CV)",
            lambda s: ElasticNetCV(
                l1_ratio=[0.2, 0.5, 0.8], cv=3, max_iter=5_000, random_state=s.seed
            ),
            True,
        ),
    ]
}

CLASSIFICATION: dict[str, Candidate] = {
    c.key: c
    for c in [
        Candidate(
            "lda", "linear discriminant analysis", lambda s: LinearDiscriminantAnalysis(), True
        ),
        Candidate(
            "logistic",
            "logistic regression",
            lambda s: LogisticRegression(max_iter=1_000, random_state=s.seed),
            True,
        ),
        Candidate(
            "lightgbm",
            "LightGBM, 31 leaves per tree (15 with more than 10 classes)",
            lambda s: _lightgbm(s, LGBMClassifier),
            False,
        ),
        Candidate(
            "extra_trees",
            "extremely randomised trees, bounded to the model budget",
            lambda s: ExtraTreesClassifier(**s.forest(100)),
            False,
        ),
        Candidate(
            "hist_gradient_boosting",
            "histogram gradient boosting (early stopping on 10,000+ rows)",
            lambda s: HistGradientBoostingClassifier(random_state=s.seed),
            False,
        ),
        Candidate(
            "xgboost",
            "XGBoost, depth 6",
            lambda s: _xgboost(s, LabelledXGBClassifier),
            False,
        ),
        Candidate(
            "random_forest",
            "random forest, trees bounded to the model budget",
            lambda s: RandomForestClassifier(**s.forest(100)),
            False,
        ),
        Candidate(
            "mlp",
            "small neural network (one hidden layer of 32)",
            lambda s: MLPClassifier(hidden_layer_sizes=(32,), max_iter=2000, random_state=s.seed),
            True,
        ),
        Candidate(
            "gradient_boosting",
            "gradient boosting, 100 trees per class",
            lambda s: GradientBoostingClassifier(random_state=s.seed),
            False,
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
    sizing: Sizing,
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
            ("model", candidate.build(sizing)),
        ]
    )


def pipeline_around(
    estimator: Any, kinds: dict[str, FeatureKind], *, scaled: bool = False
) -> Pipeline:
    """The menu's preprocessing (impute, optionally scale, one-hot) around any estimator."""
    candidate = Candidate(type(estimator).__name__, "", lambda s: estimator, scaled)
    sizing = Sizing(rows=0, classes=0, seed=0, threads=1, max_model_bytes=0)
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    return build_pipeline(candidate, numeric, categorical, None, sizing)
