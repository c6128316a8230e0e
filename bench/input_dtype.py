"""What float64 numbers cost against float32 ones: inputs, and the trees' thresholds
(docs/import.md#where-parity-is-checked).

    uv run python bench/input_dtype.py
    uv run python bench/input_dtype.py --repeats 2000
    uv run python bench/input_dtype.py --compare thresholds --repeats 2000
    uv run python bench/input_dtype.py --compare missing --repeats 2000

`--compare inputs` (the default): two pipelines on the bundled insurance data, each exported
twice: as `modelship train` and `modelship import` do (numbers in float64:
`feed_numbers_in_double`, the imputer in float64) and as they did before (numbers in float32,
skl2onnx's float32 Imputer operator). Issue 35's one-hot + StandardScaler + 30-tree forest, and
the training menu's 100-tree gradient boosting (imputer, no scaler: its numbers are cast to
float32 in front of the trees).

`--compare thresholds`: a 200-tree LightGBM and a histogram gradient boosting (100 iterations)
in the menu's pipeline, exported as now (the tree operator takes float64 features and holds the
source's float64 thresholds: build/training/thresholds.py) and with the converters' float32
thresholds behind a Cast(float) (what the export wrote before; it decided some inputs otherwise,
at the same size and speed as any float32 thresholds).

`--compare missing`: issue 35's forest and a 100-tree forest in the menu's pipeline (an imputer in
front), exported as now (where a blank can reach the trees, each split of a scikit-learn tree or
forest sends a missing value the side it learnt: `nodes_missing_value_tracks_true`,
build/training/thresholds.py; behind the menu's imputer it cannot, so both variants are alike)
and without those sides, as skl2onnx writes them (onnxruntime then skips the check).

For each: model.onnx's size, and the CPU time per call (one onnxruntime thread, as a worker runs
it) of one row and of a 1,000-row batch, the two variants measured in turns, back to back,
`repeats` calls per turn; the median of the turns is reported. Feeds are built before timing
(decoding costs the same either way: one numpy cast per column).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from typing import Any
from unittest import mock

import numpy as np
import onnxruntime as ort
import pandas as pd
from lightgbm import LGBMRegressor
from skl2onnx import update_registered_converter
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelship.build.training import export, thresholds
from modelship.build.training.data import BUNDLED_DATA
from modelship.build.training.models import pipeline_around
from modelship.contracts.card import FeatureKind

NUMERIC = ["age", "bmi", "children"]
CATEGORICAL = ["sex", "smoker", "region"]
TURNS = 15


ISSUE_35_FOREST = "scaler + 30-tree forest (issue 35)"


def _issue_35_forest(x: pd.DataFrame, y: pd.Series) -> Pipeline:
    """Issue 35's pipeline: one-hot + StandardScaler + a 30-tree forest."""
    scaled = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("num", StandardScaler(), NUMERIC),
        ]
    )
    forest = RandomForestRegressor(n_estimators=30, max_depth=8, random_state=0)
    return Pipeline([("f", scaled), ("m", forest)]).fit(x, y)


def _pipelines(x: pd.DataFrame, y: pd.Series) -> dict[str, Pipeline]:
    boosting = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0)
    return {
        ISSUE_35_FOREST: _issue_35_forest(x, y),
        "100-tree gradient boosting (menu)": pipeline_around(boosting, _kinds(x), scaled=False).fit(
            x, y
        ),
    }


def _boosters(x: pd.DataFrame, y: pd.Series) -> dict[str, Pipeline]:
    kinds = _kinds(x)
    lightgbm = LGBMRegressor(n_estimators=200, verbose=-1, random_state=0)
    histogram = HistGradientBoostingRegressor(max_iter=100, random_state=0)
    return {
        "200-tree LightGBM (menu)": pipeline_around(lightgbm, kinds).fit(x, y),
        "100-iteration histogram boosting (menu)": pipeline_around(histogram, kinds).fit(x, y),
    }


def _forests(x: pd.DataFrame, y: pd.Series) -> dict[str, Pipeline]:
    forest = RandomForestRegressor(n_estimators=100, random_state=0)
    return {
        ISSUE_35_FOREST: _issue_35_forest(x, y),
        "100-tree forest (menu)": pipeline_around(forest, _kinds(x), scaled=False).fit(x, y),
    }


def _kinds(x: pd.DataFrame) -> dict[str, FeatureKind]:
    return {str(c): "numeric" if c in NUMERIC else "categorical" for c in x}


def _exported(
    pipeline: Pipeline,
    x: pd.DataFrame,
    before: Callable[[], AbstractContextManager[Any]],
    names: tuple[str, str],
) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """The export as it is now (`names[0]`) and as `before` makes it (`names[1]`), with feeds."""
    kinds = _kinds(x)
    out = {}
    now, then = names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for variant, context in ((now, contextlib.nullcontext()), (then, before())):
            with context:
                onnx_bytes, inputs = export.export_onnx(pipeline, kinds, "regression")
                out[variant] = onnx_bytes, export.onnx_feeds(x, kinds, inputs)
    return out


@contextlib.contextmanager
def _float32_inputs() -> Iterator[None]:
    """Numbers in float32, imputed by skl2onnx's float32 Imputer operator."""
    with (
        mock.patch.object(export, "feed_numbers_in_double", return_value=None),
        mock.patch.object(export, "NUMERIC_DTYPE", "float32"),
    ):
        _imputer(convert_sklearn_imputer)
        try:
            yield
        finally:
            _imputer(export._convert_imputer_in_double)


def _float32_thresholds() -> AbstractContextManager[Any]:
    """The converters' float32 thresholds behind a Cast(float), as exported before."""
    return mock.patch.object(export, "decide_as_source", return_value=0)


def _no_missing_sides() -> AbstractContextManager[Any]:
    """Trees and forests without missing-value sides, as skl2onnx writes them."""
    return mock.patch.object(thresholds, "_missing_as_source", return_value=None)


def _imputer(converter: Callable[..., None]) -> None:
    update_registered_converter(
        SimpleImputer,
        "SklearnSimpleImputer",
        calculate_sklearn_imputer_output_shapes,
        converter,
        overwrite=True,
    )


def _cpu_us(call: Callable[[], Any], repeats: int) -> float:
    started = time.thread_time_ns()
    for _ in range(repeats):
        call()
    return (time.thread_time_ns() - started) / repeats / 1e3


# Each comparison: the models, how the export was made before, and the two variants' names.
COMPARISONS: dict[
    str,
    tuple[
        Callable[[pd.DataFrame, pd.Series], dict[str, Pipeline]],
        Callable[[], AbstractContextManager[Any]],
        tuple[str, str],
    ],
] = {
    "inputs": (_pipelines, _float32_inputs, ("float64", "float32")),
    "thresholds": (_boosters, _float32_thresholds, ("float64", "float32")),
    "missing": (_forests, _no_missing_sides, ("missing sides", "none")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=500, help="calls per turn (500)")
    parser.add_argument(
        "--compare",
        choices=list(COMPARISONS),
        default="inputs",
        help="float64 vs float32 numeric inputs (inputs), the trees' thresholds (thresholds), "
        "or forests' missing-value sides (missing)",
    )
    args = parser.parse_args()
    frame = pd.read_csv(BUNDLED_DATA)
    x, y = frame.drop(columns="charges"), frame["charges"]
    batch = x.sample(1_000, random_state=0, replace=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    pipelines, before, names = COMPARISONS[args.compare]
    print(f"model | {args.compare} | model.onnx bytes | 1 row µs CPU | 1,000 rows µs CPU")
    for label, pipeline in pipelines(x, y).items():
        variants = _exported(pipeline, batch, before, names)
        sessions = {
            dtype: ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            for dtype, (data, _) in variants.items()
        }
        timings: dict[str, dict[str, list[float]]] = {d: {"1": [], "1000": []} for d in variants}
        for _ in range(TURNS):
            for dtype, (_, feeds) in variants.items():
                one = {name: values[:1] for name, values in feeds.items()}
                run = sessions[dtype].run
                timings[dtype]["1"].append(_cpu_us(partial(run, None, one), args.repeats))
                many = max(1, args.repeats // 50)
                timings[dtype]["1000"].append(_cpu_us(partial(run, None, feeds), many))
        for dtype, (data, _) in variants.items():
            one_row = statistics.median(timings[dtype]["1"])
            thousand = statistics.median(timings[dtype]["1000"])
            print(f"{label} | {dtype} | {len(data):,} | {one_row:.1f} | {thousand:,.0f}")
        spread = np.ptp(timings[names[0]]["1"]) / statistics.median(timings[names[0]]["1"])
        print(f"  (1-row turns of {names[0]} spread {spread:.0%} of their median)")


if __name__ == "__main__":
    main()
