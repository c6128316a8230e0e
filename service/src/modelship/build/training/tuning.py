"""What the search tunes per model family, and boosting with early stopping.

Each family has a short list of configurations, the menu's defaults first and then a few
alternatives ordered from cheap to expensive (the search tries them in that order while its
tuning time lasts, so a tight budget keeps the cheap ones). Boosting families fit with early
stopping: rounds up to what the model budget allows, stopped once 20 rounds bring nothing on a
validation part, and the rounds found become the fixed `n_estimators` of the candidate's
cross-validation and final fit (so the exported model is a plain booster, and its explanation is
recorded as for any other).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from modelship.build.training.models import Sizing

Config = dict[str, Any]
SCREEN_ROUNDS = 30  # a booster's rounds in the screen, at a learning rate up to 3 times its own
SCREEN_RATE_FACTOR = 3.0
SCREEN_RATE_CAP = 0.5
PATIENCE = 20  # rounds without improvement on the validation part before a booster stops
# The share of a fold's training rows that a LightGBM or XGBoost fit holds aside to stop on
# (the fold's own validation rows only score it, so its score is not chosen on itself).
STOPPING_SHARE = 0.1


def _lightgbm(sizing: Sizing) -> list[Config]:
    leaves = sizing.boosting_leaves
    return [
        {"num_leaves": leaves},
        {"num_leaves": 2 * leaves + 1, "min_child_samples": 10},
        {"num_leaves": leaves, "learning_rate": 0.05, "colsample_bytree": 0.8, "reg_lambda": 1.0},
        {"num_leaves": 7, "learning_rate": 0.2, "min_child_samples": 5},
        {
            "num_leaves": 2 * leaves + 1,
            "learning_rate": 0.05,
            "colsample_bytree": 0.7,
            "subsample": 0.8,
            "subsample_freq": 1,
            "reg_lambda": 1.0,
        },
    ]


def _xgboost(sizing: Sizing) -> list[Config]:
    return [
        {"max_depth": 6},
        {"max_depth": 4, "learning_rate": 0.2},
        {"max_depth": 8, "min_child_weight": 2, "colsample_bytree": 0.8},
        {"max_depth": 6, "learning_rate": 0.05, "subsample": 0.8, "reg_lambda": 2.0},
    ]


def _hist_gradient_boosting(sizing: Sizing) -> list[Config]:
    return [
        {"max_leaf_nodes": 31},
        {"max_leaf_nodes": 15, "learning_rate": 0.2},
        {"max_leaf_nodes": 63, "min_samples_leaf": 10, "l2_regularization": 1.0},
    ]


def _forest(sizing: Sizing) -> list[Config]:
    # Every configuration keeps the menu's bound on leaves (Sizing.forest): only the features
    # tried per split change.
    return [{}, {"max_features": 0.5}, {"max_features": 1.0}]


SPACES: dict[str, Callable[[Sizing], list[Config]]] = {
    "lightgbm": _lightgbm,
    "xgboost": _xgboost,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "gradient_boosting": lambda s: [
        {"max_depth": 3},
        {"max_depth": 5, "learning_rate": 0.1, "subsample": 0.8},
    ],
    "random_forest": _forest,
    "extra_trees": _forest,
    "logistic": lambda s: [{"C": 1.0}, {"C": 10.0}, {"C": 0.1}, {"C": 100.0}],
    "ridge": lambda s: [{"alpha": 1.0}, {"alpha": 10.0}, {"alpha": 0.1}, {"alpha": 100.0}],
    "lda": lambda s: [{"solver": "svd"}, {"solver": "lsqr", "shrinkage": "auto"}],
    "mlp": lambda s: [
        {"hidden_layer_sizes": (32,)},
        {"hidden_layer_sizes": (64,), "alpha": 1e-3},
        {"hidden_layer_sizes": (128,), "alpha": 1e-2},
    ],
}


def space(key: str, sizing: Sizing) -> list[Config]:
    """The configurations of a family, the menu's defaults first ([{}] when nothing is tuned)."""
    return SPACES[key](sizing) if key in SPACES else [{}]


def label(config: Config) -> str:
    """A configuration as a user reads it: `num_leaves=31, learning_rate=0.05`."""
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "defaults"


def _leaves(model: Any) -> int:
    params = model.get_params()
    if "num_leaves" in params:
        return int(params["num_leaves"])
    if params.get("max_leaf_nodes"):
        return int(params["max_leaf_nodes"])
    return int(2 ** int(params.get("max_depth") or 6))


def stopping(key: str) -> bool:
    """Whether the family fits with early stopping (its rounds are found, not fixed)."""
    return key in {"lightgbm", "xgboost", "hist_gradient_boosting", "gradient_boosting"}


def configured(pipeline: Pipeline, key: str, config: Config, sizing: Sizing) -> Pipeline:
    """The pipeline with `config` set, and early stopping on for a boosting family: rounds up
    to what the model budget allows (Sizing.boosting_round_cap)."""
    tuned = clone(pipeline)
    tuned.set_params(**{f"model__{k}": v for k, v in config.items()})
    model = tuned.named_steps["model"]
    if not stopping(key):
        return tuned
    cap = sizing.boosting_round_cap(_leaves(model))
    if key == "hist_gradient_boosting":
        model.set_params(max_iter=cap, early_stopping=True, n_iter_no_change=PATIENCE)
    elif key == "gradient_boosting":
        model.set_params(n_estimators=cap, n_iter_no_change=PATIENCE // 2)
    elif key == "xgboost":
        model.set_params(n_estimators=cap, early_stopping_rounds=PATIENCE)
    else:
        model.set_params(n_estimators=cap)
    return tuned


def fixed(pipeline: Pipeline, key: str, rounds: int | None) -> Pipeline:
    """A configured pipeline with the rounds that early stopping found, and no early stopping:
    what the remaining folds and the final fit train (the same model on every fold)."""
    final = clone(pipeline)
    if rounds is None or not stopping(key):
        return final
    model = final.named_steps["model"]
    if key == "hist_gradient_boosting":
        model.set_params(max_iter=rounds, early_stopping=False)
    elif key == "gradient_boosting":
        model.set_params(n_estimators=rounds, n_iter_no_change=None)
    elif key == "xgboost":
        model.set_params(n_estimators=rounds, early_stopping_rounds=None)
    else:
        model.set_params(n_estimators=rounds)
    return final


def screened(pipeline: Pipeline, key: str) -> Pipeline:
    """A configured pipeline for the screen: a booster held to SCREEN_ROUNDS rounds at a
    higher learning rate (a low-fidelity fit that ranks the families at a fraction of the cost;
    at its own rate, 30 rounds left LightGBM far behind where its full fit ends)."""
    screen = fixed(pipeline, key, SCREEN_ROUNDS)
    if stopping(key):
        model = screen.named_steps["model"]
        rate = float(model.get_params().get("learning_rate") or 0.1)
        model.set_params(learning_rate=min(SCREEN_RATE_CAP, rate * SCREEN_RATE_FACTOR))
    return screen


def rounds_factor(key: str, pipeline: Pipeline) -> float:
    """How much longer than its screen a booster's fit with the menu's rounds takes."""
    if not stopping(key):
        return 1.0
    params = pipeline.named_steps["model"].get_params()
    return max(
        1.0, float(params.get("n_estimators") or params.get("max_iter") or 100) / SCREEN_ROUNDS
    )


def fit_stopping(
    pipeline: Pipeline, key: str, x: pd.DataFrame, y: pd.Series, seed: int, *, stop: bool = True
) -> tuple[Pipeline, int | None]:
    """Fit a configured pipeline, with early stopping for a boosting family unless `stop` is
    false (a `fixed` or `screened` pipeline); the rounds it kept (None without early stopping)."""
    if not (stop and stopping(key)):
        return pipeline.fit(x, y), None
    model = pipeline.named_steps["model"]
    if key in {"hist_gradient_boosting", "gradient_boosting"}:
        # scikit-learn's boosters hold their own validation part aside.
        pipeline.fit(x, y)
        return pipeline, int(getattr(model, "n_iter_", None) or model.n_estimators_)
    classes = not pd.api.types.is_numeric_dtype(y)
    stratify = y if classes and y.value_counts().min() >= 2 else None
    try:
        x_fit, x_stop, y_fit, y_stop = train_test_split(
            x, y, test_size=STOPPING_SHARE, random_state=seed, stratify=stratify
        )
    except ValueError:  # a class too rare to be in both parts: a plain random part
        x_fit, x_stop, y_fit, y_stop = train_test_split(
            x, y, test_size=STOPPING_SHARE, random_state=seed
        )
    features = pipeline.named_steps["features"]
    fit_rows = features.fit_transform(x_fit)
    stop_rows = features.transform(x_stop)
    if key == "xgboost":
        model.fit(fit_rows, y_fit, eval_set=[(stop_rows, y_stop)], verbose=False)
        rounds = int(model.best_iteration) + 1
    else:
        model.fit(
            fit_rows,
            y_fit,
            eval_set=[(stop_rows, np.asarray(y_stop))],
            callbacks=[lightgbm.early_stopping(PATIENCE, verbose=False)],
        )
        rounds = int(model.best_iteration_ or model.n_estimators)
    return pipeline, max(1, rounds)
