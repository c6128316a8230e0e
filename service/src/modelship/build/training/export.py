"""Export a fitted pipeline to ONNX and measure how faithfully the export reproduces it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
from lightgbm import LGBMClassifier, LGBMRegressor
from onnx import TensorProto
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import get_latest_tested_opset_version, to_onnx, update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxDiv, OnnxIsNaN, OnnxSub, OnnxWhere
from skl2onnx.common._container import ModelComponentContainer as Container
from skl2onnx.common._topology import Operator, Scope
from skl2onnx.common.data_types import (
    FloatTensorType,
    StringTensorType,
    guess_proto_type,
)
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from skl2onnx.operator_converters.common import concatenate_variables
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from skl2onnx.shape_calculators.scaler import calculate_sklearn_scaler_output_shapes
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, RobustScaler, StandardScaler
from xgboost import XGBRegressor

from modelship.build.training.double_inputs import feed_numbers_in_double
from modelship.build.training.models import LabelledXGBClassifier
from modelship.build.training.thresholds import decide_as_source, nan_can_reach_trees
from modelship.contracts.card import FeatureKind, InputDtype, Parity, Task
from modelship.errors import ExportError

# onnxmltools' tree converters write version 3 of the ONNX-ML operators; every model uses it,
# so all tree models share one operator version (onnxruntime runs it natively).
TARGET_OPSET = {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}

# skl2onnx converts scikit-learn; LightGBM and XGBoost inside a pipeline need onnxmltools'
# converters registered with it (the recipe of skl2onnx's own LightGBM/XGBoost examples).
_CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
for _kind, _alias, _convert in (
    (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
    (LabelledXGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
):
    update_registered_converter(
        _kind,
        _alias,
        calculate_linear_classifier_output_shapes,
        _convert,
        options=_CLASSIFIER_OPTIONS,
    )
update_registered_converter(
    LGBMRegressor,
    "LightGbmLGBMRegressor",
    calculate_linear_regressor_output_shapes,
    convert_lightgbm,
    options={"split": None},
)
update_registered_converter(
    XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
)


def _convert_scaler_in_double(scope: Scope, operator: Operator, container: Container) -> None:
    """Scale in float64 with the fitted float64 statistics, then cast to float32.

    scikit-learn scales in float64 and casts to float32 only inside its trees, comparing with
    float64 thresholds (which the export writes so that they decide the same way: thresholds.py).
    skl2onnx's own converter scales in float32 (and its `div_cast` option casts the
    statistics to float32 first): scaled values then cross split thresholds and predictions
    move (docs/import.md#where-parity-is-checked).
    """
    scaler = operator.raw_operator
    offset: npt.NDArray[np.float64] | None = None
    divisor: npt.NDArray[np.float64] | None = None
    if isinstance(scaler, StandardScaler):
        offset = scaler.mean_ if scaler.with_mean else None
        divisor = scaler.scale_ if scaler.with_std else None
    elif isinstance(scaler, RobustScaler):
        offset = scaler.center_ if scaler.with_centering else None
        divisor = scaler.scale_ if scaler.with_scaling else None
    elif isinstance(scaler, MaxAbsScaler):
        divisor = scaler.scale_
    opv = container.target_opset
    value = _in_double(scope, operator, container)
    if offset is not None:
        value = OnnxSub(value, np.asarray(offset, dtype=np.float64), op_version=opv)
    if divisor is not None:
        value = OnnxDiv(value, np.asarray(divisor, dtype=np.float64), op_version=opv)
    _cast_out(value, scope, operator, container)


def _in_double(scope: Scope, operator: Operator, container: Container) -> Any:
    """The operator's inputs (concatenated) cast to float64."""
    name = (
        concatenate_variables(scope, operator.inputs, container)
        if len(operator.inputs) > 1
        else operator.inputs[0].full_name
    )
    return OnnxCast(name, to=TensorProto.DOUBLE, op_version=container.target_opset)


def _cast_out(value: Any, scope: Scope, operator: Operator, container: Container) -> None:
    """`value` cast to the operator's output type, as its output."""
    OnnxCast(
        value,
        to=guess_proto_type(operator.outputs[0].type),
        op_version=container.target_opset,
        output_names=[operator.outputs[0].full_name],
    ).add_to(scope, container)


def _convert_imputer_in_double(scope: Scope, operator: Operator, container: Container) -> None:
    """Fill missing numbers with the fitted float64 statistics, in float64.

    skl2onnx's Imputer operator works in float32 with the statistics rounded to float32: a
    scaler after it would then scale float32 values, not the user's (see the scaler above).
    Anything else (text, a missing-value marker other than NaN, an indicator) is skl2onnx's.
    """
    imputer = operator.raw_operator
    fill = np.asarray(getattr(imputer, "statistics_", [np.nan]), dtype=np.float64)
    numbers = isinstance(operator.inputs[0].type, FloatTensorType)
    plain = imputer.add_indicator is False and np.isnan(imputer.missing_values)
    if not (numbers and plain and np.isfinite(fill).all()):
        convert_sklearn_imputer(scope, operator, container)
        return
    opv = container.target_opset
    value = _in_double(scope, operator, container)
    filled = OnnxWhere(OnnxIsNaN(value, op_version=opv), fill, value, op_version=opv)
    _cast_out(filled, scope, operator, container)


for _kind, _alias in (
    (StandardScaler, "SklearnScaler"),
    (RobustScaler, "SklearnRobustScaler"),
    (MaxAbsScaler, "SklearnMaxAbsScaler"),
):
    update_registered_converter(
        _kind,
        _alias,
        calculate_sklearn_scaler_output_shapes,
        _convert_scaler_in_double,
        overwrite=True,
    )
update_registered_converter(
    SimpleImputer,
    "SklearnSimpleImputer",
    calculate_sklearn_imputer_output_shapes,
    _convert_imputer_in_double,
    overwrite=True,
)

# What every export modelship writes takes numbers in (double_inputs.py says why); the card
# records it per feature, since artifacts made before took float32.
NUMERIC_DTYPE: InputDtype = "float64"

# Tie margin: two classes whose probabilities differ by less than this may swap labels in float32.
TIE_MARGIN = 1e-4


class FittedModel(Protocol):
    """What parity compares the export against: a scikit-learn pipeline, or an imported
    model's original library behind the same two methods."""

    def predict(self, frame: pd.DataFrame) -> Any: ...

    def predict_proba(self, frame: pd.DataFrame) -> Any: ...


@dataclass(frozen=True)
class ParityWording:
    """How a parity failure names the original, the rows and the way out."""

    original: str = "scikit-learn"
    rows: str = "the test split"
    advice: str = "choose another --model or raise --parity-tolerance"


def export_onnx(
    pipeline: Pipeline,
    kinds: dict[str, FeatureKind],
    task: Task,
    advice: str = "choose another --model",
) -> tuple[bytes, dict[str, str]]:
    """One ONNX input per feature: float64 [N, 1] for numbers (NUMERIC_DTYPE), string [N, 1]
    for categories.

    Returns the model and each feature's ONNX input name (the converter sanitises names).
    """
    initial_types = [
        (name, FloatTensorType([None, 1]) if kind == "numeric" else StringTensorType([None, 1]))
        for name, kind in kinds.items()
    ]
    estimator = pipeline.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if task == "classification" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = to_onnx(
                pipeline,
                initial_types=initial_types,
                options=options,
                target_opset=TARGET_OPSET,
            )
    except Exception as exc:  # skl2onnx raises many unrelated types for "cannot convert"
        raise ExportError(
            f"cannot export {type(estimator).__name__} to ONNX ({type(exc).__name__}: {exc}); "
            f"{advice}"
        ) from exc
    inputs = [i.name for i in model.graph.input]
    feed_numbers_in_double(
        model,
        [name for name, kind in zip(inputs, kinds.values(), strict=True) if kind == "numeric"],
    )
    decide_as_source(model, estimator, nan_reaches=nan_can_reach_trees(pipeline))
    return bytes(model.SerializeToString()), dict(zip(kinds, inputs, strict=True))


def onnx_feeds(
    frame: pd.DataFrame, kinds: dict[str, FeatureKind], input_names: dict[str, str]
) -> dict[str, npt.NDArray[Any]]:
    # One column at a time (`frame[name]`, not `frame[[name]]`): a one-column frame per feature
    # costs ten times more, which the report's permutation importance pays 5 x features times.
    return {
        input_names[name]: frame[name]
        .to_numpy(dtype=NUMERIC_DTYPE if kind == "numeric" else object)
        .reshape(-1, 1)
        for name, kind in kinds.items()
    }


def run_onnx(onnx_bytes: bytes, feeds: dict[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def measure_parity(
    *,
    onnx_bytes: bytes,
    pipeline: FittedModel,
    frame: pd.DataFrame,
    kinds: dict[str, FeatureKind],
    input_names: dict[str, str],
    task: Task,
    target_scale: float,
    tolerance: float,
    wording: ParityWording = ParityWording(),
) -> tuple[Parity, list[npt.NDArray[Any]]]:
    """Compare the original model and ONNX on `frame`; raise ExportError beyond `tolerance`.

    The error names the worst row by `frame`'s index label.

    Regression differences are judged relative to the target's spread (`target_scale`), so
    the tolerance means the same for prices in dollars and for rates near zero.
    Returns the parity record and the ONNX outputs (reused for the test metrics).
    """
    outputs = run_onnx(onnx_bytes, onnx_feeds(frame, kinds, input_names))
    if task == "regression":
        expected = np.asarray(pipeline.predict(frame), dtype=np.float64)
        actual = outputs[0].reshape(-1).astype(np.float64)
        diff = np.abs(actual - expected)
        max_abs = float(diff.max())
        max_rel = float((diff / np.maximum(np.abs(expected), 1e-12)).max())
        parity = Parity(
            rows=len(frame), max_abs_diff=max_abs, max_rel_diff=max_rel, tolerance=tolerance
        )
        if max_abs > tolerance * max(target_scale, 1e-12):
            worst = int(diff.argmax())
            raise ExportError(
                f"the ONNX export differs from {wording.original} by up to {max_abs:.6g} on "
                f"{wording.rows}, more than {tolerance:g} x the target's standard deviation "
                f"({target_scale:.6g}); worst at row {frame.index[worst]} "
                f"({expected[worst]:.6g} vs {actual[worst]:.6g}); {wording.advice}"
            )
        return parity, outputs
    expected_proba = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
    actual_proba = outputs[1].astype(np.float64)
    diff = np.abs(actual_proba - expected_proba)
    max_abs = float(diff.max())
    max_rel = float((diff / np.maximum(expected_proba, 1e-12)).max())
    expected_labels = np.asarray(pipeline.predict(frame)).astype(str)
    agree = outputs[0].astype(str) == expected_labels
    ordered = np.sort(expected_proba, axis=1)
    near_tie = (ordered[:, -1] - ordered[:, -2]) < TIE_MARGIN if ordered.shape[1] > 1 else ~agree
    parity = Parity(
        rows=len(frame),
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        tolerance=tolerance,
        label_agreement=float(agree.mean()),
    )
    flipped = ~agree & ~near_tie
    if max_abs > tolerance or bool(np.any(flipped)):
        worst = int(np.argmax(flipped)) if flipped.any() else int(diff.max(axis=1).argmax())
        raise ExportError(
            f"the ONNX export differs from {wording.original} on {wording.rows}: probabilities "
            f"by up to {max_abs:.3g} (tolerance {tolerance:g}), labels agree on "
            f"{agree.mean():.2%} of rows; worst at row {frame.index[worst]} (label "
            f"{str(expected_labels[worst])!r} vs {str(outputs[0][worst])!r}); {wording.advice}"
        )
    return parity, outputs
