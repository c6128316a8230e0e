"""The CSV fast path (whole numeric columns in one numpy call) gives what the cell-by-cell path
gives, and leaves every cell it cannot take (missing, text, out of range) to that path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelship.errors import InvalidInput
from modelship.predictor import Predictor

HEADER = ["age", "sex", "bmi", "children", "smoker", "region"]
POSITIONS = {name: i for i, name in enumerate(HEADER)}


def rows(*ages: str) -> list[tuple[int, list[str]]]:
    return [
        (line, [age, "male", " 30.5 ", "1", "no", "southwest"])
        for line, age in enumerate(ages, start=2)
    ]


def test_clean_columns_take_the_fast_path(regression_predictor: Predictor) -> None:
    batch = regression_predictor.schema.from_csv_rows(rows("19", "64.0", "1e1"), POSITIONS)
    ages = batch.feeds[regression_predictor.card.feature("age").input_name]
    assert ages.dtype == np.float32
    assert ages.shape == (3, 1)
    assert ages.reshape(-1).tolist() == [19.0, 64.0, 10.0]
    bmi = batch.feeds[regression_predictor.card.feature("bmi").input_name]
    assert bmi.reshape(-1).tolist() == [30.5] * 3
    assert not batch.warnings


@pytest.mark.parametrize("missing", ["", "NA", "nan", "NaN", "null"])
def test_missing_values_are_still_imputed_with_a_warning(
    regression_predictor: Predictor, missing: str
) -> None:
    batch = regression_predictor.schema.from_csv_rows(rows("19", missing), POSITIONS)
    ages = batch.feeds[regression_predictor.card.feature("age").input_name].reshape(-1)
    assert ages[0] == 19.0
    assert math.isnan(ages[1])
    [warning] = batch.warnings.as_json()
    assert warning["field"] == "age"
    assert warning["rows"] == [3]


@pytest.mark.parametrize(
    ("cell", "problem"),
    [("abc", "expected a number"), ("1e39", "out of range"), ("inf", "out of range")],
)
def test_bad_cells_are_still_reported_by_line(
    regression_predictor: Predictor, cell: str, problem: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        regression_predictor.schema.from_csv_rows(rows("19", cell), POSITIONS)
    [found] = caught.value.problems
    assert found.loc == ("file", "line 3", "age")
    assert problem in found.problem


def test_unseen_categories_are_still_warned_about(regression_predictor: Predictor) -> None:
    data = rows("19", "20")
    data[1][1][5] = "mars"
    batch = regression_predictor.schema.from_csv_rows(data, POSITIONS)
    [warning] = batch.warnings.as_json()
    assert warning["field"] == "region"
    assert warning["rows"] == [3]
