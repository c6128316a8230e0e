"""The CSV fast path (whole numeric columns in one numpy call) gives what the cell-by-cell path
gives, and leaves every cell it cannot take (missing, text, out of range) to that path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelship.errors import InvalidInput
from modelship.model.codecs.csv import CsvChunk, CsvCodec
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictor

HEADER = ["age", "sex", "bmi", "children", "smoker", "region"]
POSITIONS = {name: i for i, name in enumerate(HEADER)}


def rows(*ages: str) -> CsvChunk:
    return CsvChunk.from_rows(
        [
            (line, [age, "male", " 30.5 ", "1", "no", "southwest"])
            for line, age in enumerate(ages, start=2)
        ]
    )


def test_clean_columns_take_the_fast_path(regression_predictor: Predictor) -> None:
    batch = CsvCodec(regression_predictor.schema).decode(rows("19", "64.0", "1e1"), POSITIONS)
    ages = batch.feeds[regression_predictor.card.feature("age").input_name]
    assert ages.dtype == regression_predictor.schema.dtype["age"] == np.float64
    assert ages.shape == (3, 1)
    assert ages.reshape(-1).tolist() == [19.0, 64.0, 10.0]
    bmi = batch.feeds[regression_predictor.card.feature("bmi").input_name]
    assert bmi.reshape(-1).tolist() == [30.5] * 3
    assert not batch.warnings


@pytest.mark.parametrize("missing", ["", "NA", "nan", "NaN", "null"])
def test_missing_values_are_still_imputed_with_a_warning(
    regression_predictor: Predictor, missing: str
) -> None:
    batch = CsvCodec(regression_predictor.schema).decode(rows("19", missing), POSITIONS)
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
        CsvCodec(regression_predictor.schema).decode(rows("19", cell), POSITIONS)
    [found] = caught.value.problems
    assert found.loc == ("file", "line 3", "age")
    assert problem in found.problem


def test_unseen_categories_are_still_warned_about(regression_predictor: Predictor) -> None:
    data = rows("19", "20")
    data.columns[5][1] = "mars"
    batch = CsvCodec(regression_predictor.schema).decode(data, POSITIONS)
    [warning] = batch.warnings.as_json()
    assert warning["field"] == "region"
    assert warning["rows"] == [3]


def _records(n: int) -> list[dict[str, object]]:
    return [
        {"age": 20 + i % 40, "sex": "female", "bmi": 22.5 + i, "children": i % 3,
         "smoker": "no", "region": "southwest"}
        for i in range(n)
    ]  # fmt: skip


def test_clean_json_batches_equal_the_record_by_record_path(
    regression_predictor: Predictor,
) -> None:
    codec = RecordsCodec(regression_predictor.schema)
    records = _records(40)
    fast = codec.decode(records, ("body",))
    slow = codec.decode(records[:31], ("body",))  # below the fast-path size
    for name, column in slow.feeds.items():
        np.testing.assert_array_equal(fast.feeds[name][:31], column)
        assert fast.feeds[name].dtype == column.dtype
    assert fast.rows == 40
    assert not fast.warnings


@pytest.mark.parametrize(
    ("field", "value", "warning"),
    [("bmi", None, "missing value"), ("region", "mars", "unseen category 'mars'")],
)
def test_batches_needing_a_warning_get_it(
    regression_predictor: Predictor, field: str, value: object, warning: str
) -> None:
    records = _records(40)
    records[33][field] = value
    batch = RecordsCodec(regression_predictor.schema).decode(records, ("body",))
    [found] = batch.warnings.as_json()
    assert found["problem"].startswith(warning)
    assert found["rows"] == [33]


@pytest.mark.parametrize("value", [True, "12", 10**400, 1e39])
def test_bad_values_in_big_batches_are_reported_by_row(
    regression_predictor: Predictor, value: object
) -> None:
    records = _records(40)
    records[35]["age"] = value
    with pytest.raises(InvalidInput) as caught:
        RecordsCodec(regression_predictor.schema).decode(records, ("body",))
    assert caught.value.problems[0].loc == ("body", 35, "age")


def test_missing_or_extra_keys_in_big_batches_are_reported(regression_predictor: Predictor) -> None:
    records = _records(40)
    del records[2]["sex"]
    records[3]["pet"] = "cat"
    with pytest.raises(InvalidInput) as caught:
        RecordsCodec(regression_predictor.schema).decode(records, ("body",))
    assert [p.loc for p in caught.value.problems] == [("body", 2, "sex"), ("body", 3, "pet")]
