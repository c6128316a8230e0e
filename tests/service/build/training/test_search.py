"""The search's parts: boosting with early stopping, the rounds cap, estimates before starting."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from modelship.build.training import tuning
from modelship.build.training.models import (
    CLASSIFICATION,
    MENU,
    ONNX_LEAF_ENTRY_BYTES,
    ONNX_NODE_BYTES,
    Sizing,
    build_pipeline,
)
from modelship.build.training.search import Family, Limits, Search, Trial


def _frame(csv: Path, target: str) -> tuple[pd.DataFrame, pd.Series, list[str], list[str]]:
    frame = pd.read_csv(csv)
    y = frame.pop(target)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    return frame, y if pd.api.types.is_numeric_dtype(y) else y.astype(str), numeric, categorical


@pytest.mark.parametrize(
    ("data", "target", "task", "key"),
    [
        ("insurance", "charges", "regression", "lightgbm"),
        ("insurance", "charges", "regression", "xgboost"),
        ("insurance", "charges", "regression", "hist_gradient_boosting"),
        ("iris", "species", "classification", "xgboost"),  # text labels, remapped for XGBoost
        ("iris", "species", "classification", "lightgbm"),
    ],
)
def test_boosters_stop_early_and_the_final_fit_keeps_those_rounds(
    data: str, target: str, task: str, key: str, insurance_csv: Path, iris_csv: Path
) -> None:
    x, y, numeric, categorical = _frame(insurance_csv if data == "insurance" else iris_csv, target)
    sizing = Sizing(
        rows=len(x),
        classes=0 if task == "regression" else int(y.nunique()),
        seed=7,
        threads=1,
        max_model_bytes=40 * 2**20,
    )
    menu = build_pipeline(MENU[task][key], numeric, categorical, None, sizing)  # type: ignore[index]
    configured = tuning.configured(menu, key, tuning.space(key, sizing)[0], sizing)
    _, rounds = tuning.fit_stopping(configured, key, x, y, seed=7)
    assert rounds is not None and 1 <= rounds < sizing.boosting_round_cap(31)
    # The same seed, the same rounds: the search is repeatable on one machine.
    again = tuning.configured(menu, key, tuning.space(key, sizing)[0], sizing)
    assert tuning.fit_stopping(again, key, x, y, seed=7)[1] == rounds
    final = tuning.fixed(configured, key, rounds).fit(x, y)
    model = final.named_steps["model"]
    grown = getattr(model, "n_iter_", None) or model.n_estimators
    assert grown == rounds
    assert len(final.predict(x)) == len(x)


def test_a_many_class_booster_is_capped_to_the_model_budget() -> None:
    """26 classes grow 26 trees a round: the cap keeps the file within the forests' share."""
    sizing = Sizing(rows=16_000, classes=26, seed=0, threads=1, max_model_bytes=40 * 2**20)
    for leaves in (15, 31, 63):
        rounds = sizing.boosting_round_cap(leaves)
        estimated = rounds * 26 * leaves * (2 * ONNX_NODE_BYTES + ONNX_LEAF_ENTRY_BYTES)
        assert estimated <= 20 * 2**20
    assert sizing.boosting_round_cap(63) < sizing.boosting_round_cap(15) <= 1_000
    tiny = Sizing(rows=16_000, classes=26, seed=0, threads=1, max_model_bytes=2**20)
    assert tiny.boosting_round_cap(31) == 10


def test_every_family_of_the_menu_has_its_defaults_first() -> None:
    """The first configuration tried is the menu's own (what --model NAME trains)."""
    sizing = Sizing(rows=1_000, classes=3, seed=0, threads=1, max_model_bytes=40 * 2**20)
    for key, candidate in CLASSIFICATION.items():
        defaults = candidate.build(sizing).get_params()
        first = tuning.space(key, sizing)[0]
        assert {k: defaults[k] for k in first} == first, key


def test_a_family_that_cannot_end_in_the_budget_is_estimated_not_started(
    iris_csv: Path, tmp_path: Path
) -> None:
    x, y, numeric, categorical = _frame(iris_csv, "species")
    sizing = Sizing(rows=len(x), classes=3, seed=0, threads=1, max_model_bytes=40 * 2**20)

    def family(key: str, estimate: float) -> Family:
        pipeline = build_pipeline(CLASSIFICATION[key], numeric, categorical, None, sizing)
        return Family(key, pipeline, tuning.space(key, sizing), screen_score=0.9, estimate=estimate)

    quick, slow = family("lda", 0.01), family("gradient_boosting", 100.0)
    quick.trials.append(
        Trial({"solver": "svd"}, {"macro_f1": 0.95, "macro_f1_std": 0.0}, None, 0.01)
    )
    search = Search(
        task="classification",
        x=x,
        y=y,
        folds=3,
        seed=0,
        limits=Limits(20, 40, 320),
        export=lambda *_: None,
        say=lambda _: None,
        scratch=tmp_path,
        configure=lambda key, pipeline, config: pipeline,
        workers=2,
    )
    search.families = [quick, slow]
    search._full_size = 1.5
    batch = search._next_batch([quick, slow], [quick, slow], 3, time.perf_counter() + 20)
    # lda's next configuration fits the 20 s; gradient boosting's 100 s a fold does not.
    assert [f.key for f, _ in batch] == ["lda"]
    assert slow.untried == "2 configuration(s) not started: about 200 s each, past the time budget"
    assert slow.trials == []
