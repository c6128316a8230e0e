"""`number_texts`: the prediction text of CSV answers, made by orjson where it writes what numpy
writes, and by numpy elsewhere; byte for byte what `astype(str)` gives, at any magnitude."""

from __future__ import annotations

import numpy as np
import pytest

from modelship.model.codecs.base import number_texts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_magnitude_reads_as_numpy_writes_it(dtype: type[np.floating]) -> None:
    rng = np.random.default_rng(3)
    finfo = np.finfo(dtype)
    exponents = range(int(np.log10(finfo.tiny)) - 1, int(np.log10(finfo.max)))
    for exponent in exponents:
        values = (rng.random(2_000) * 10.0**exponent * rng.choice([-1, 1], 2_000)).astype(dtype)
        values[:20] = np.round(values[:20])  # whole numbers: "100.0", "1e+16"
        assert number_texts(values) == values.astype(str).tolist(), exponent


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values_and_boundaries(dtype: type[np.floating]) -> None:
    finfo = np.finfo(dtype)
    edges = [1e-4, 1e-3, 1e5, 1e6, 1e7, 1e15, 1e16]
    values = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            finfo.max,
            finfo.min,
            finfo.tiny,
            finfo.smallest_subnormal,
            *edges,
            *[np.nextafter(dtype(edge), dtype(0)) for edge in edges],
        ],
        dtype=dtype,
    )
    assert number_texts(values) == values.astype(str).tolist()


def test_a_strided_column_empty_columns_and_other_types() -> None:
    probabilities = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    for column in probabilities.T:  # a classifier's probability columns are strided views
        assert number_texts(column) == column.astype(str).tolist()
    assert number_texts(np.array([], dtype=np.float64)) == []
    assert number_texts(np.array(["a", "b"])) == ["a", "b"]
    assert number_texts(np.array([1, 20])) == ["1", "20"]
