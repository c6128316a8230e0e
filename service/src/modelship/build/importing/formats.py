"""One converter per model family: load, decide features and task, export to the served ONNX.

Each returns a `Conversion`: the served ONNX graph and the card's facts, plus the original model
behind `predict`/`predict_proba` so parity compares the export with the library that made it.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pandas as pd

from modelship.build.importing.graph import OriginalOnnx, adapt
from modelship.build.importing.sources import Source, load_sklearn
from modelship.build.training import data as datamod
from modelship.build.training.export import FittedModel, export_onnx
from modelship.build.training.thresholds import decide_as_source
from modelship.contracts.card import FeatureKind, Task
from modelship.errors import ExportError, ModelImportError


@dataclass(frozen=True)
class Request:
    """What the user said: the sample (as text) and the options that shape the conversion."""

    frame: pd.DataFrame
    columns: list[str]  # the sample's columns other than the target, in file order
    task: Task | None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    input_map: dict[str, str] = field(default_factory=dict)
    trust_pickle: bool = False
    trusted_types: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Conversion:
    onnx_bytes: bytes
    features: list[str]
    kinds: dict[str, FeatureKind]
    input_names: dict[str, str]
    task: Task
    classes: list[str] | None
    original: FittedModel
    estimator: str
    params: dict[str, Any]
    library: str
    library_version: str | None
    converter: str
    versions: dict[str, str] = field(default_factory=dict)  # what loaded and converted it
    # The fitted scikit-learn pipeline, whose trees' node covers the explanation records.
    fitted: Any = None


def choose_features(
    declared: list[str] | None, width: int | None, columns: list[str], what: str
) -> list[str]:
    """The model's feature columns: by the names it was fitted with, else the sample's order."""
    if declared:
        missing = [c for c in declared if c not in columns]
        if missing:
            raise ModelImportError(
                f"{what} expects column(s) {', '.join(missing)} that the sample does not have "
                f"(its columns besides the target: {', '.join(columns)})"
            )
        extra = [c for c in columns if c not in declared]
        if extra:
            raise ModelImportError(
                f"the sample has column(s) {', '.join(extra)} that {what} does not take; name the "
                "target with --target, or drop them from the sample"
            )
        return list(declared)
    if width is not None and width != len(columns):
        raise ModelImportError(
            f"{what} takes {width} features but the sample has {len(columns)} columns besides "
            f"the target ({', '.join(columns)}); name the target with --target, or drop columns"
        )
    return columns


def _decided_task(found: Task, requested: Task | None, what: str) -> Task:
    if requested is not None and requested != found:
        raise ModelImportError(f"--task {requested} does not fit {what}, which is a {found} model")
    return found


def _numeric_only(request: Request, features: list[str], what: str) -> dict[str, FeatureKind]:
    kinds = datamod.infer_kinds(request.frame, features, request.numeric, [])
    text = [c for c, k in kinds.items() if k == "categorical"]
    if request.categorical or text:
        raise ModelImportError(
            f"{what} takes numbers only, but column(s) {', '.join(request.categorical or text)} "
            "hold categories: encode them as numbers, or import a scikit-learn pipeline "
            "that encodes them"
        )
    return kinds


def _matrix(frame: pd.DataFrame, features: list[str]) -> npt.NDArray[np.float64]:
    return frame[features].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------- scikit-learn


def _leaves(estimator: Any) -> Iterator[Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            if step not in (None, "passthrough"):
                yield from _leaves(step)
    elif isinstance(estimator, ColumnTransformer):
        for _, transformer, _ in estimator.transformers_:
            if transformer not in ("drop", "passthrough"):
                yield from _leaves(transformer)
    elif isinstance(estimator, FeatureUnion):
        for _, transformer in estimator.transformer_list:
            if transformer not in ("drop", "passthrough"):
                yield from _leaves(transformer)
    else:
        yield estimator


def _check_convertible(estimator: Any) -> None:
    # The registry the converter itself dispatches on (keyed by class); the public
    # supported_converters() lists converter aliases, not estimator names.
    from skl2onnx._supported_operators import sklearn_operator_name_map as supported

    refused = sorted(
        {type(leaf).__name__ for leaf in _leaves(estimator) if type(leaf) not in supported}
    )
    if refused:
        raise ModelImportError(
            f"cannot export {', '.join(refused)} to ONNX: the converter (skl2onnx) supports "
            f"scikit-learn's own estimators and transformers ({len(supported)}, e.g. "
            "ColumnTransformer steps, OneHotEncoder, StandardScaler, LogisticRegression, "
            "RandomForest*, HistGradientBoosting*); import XGBoost and LightGBM models from "
            "their native model files"
        )


class _SklearnOriginal:
    """The estimator, given a frame by column name if it was fitted with names, else an array."""

    def __init__(self, estimator: Any, by_name: bool) -> None:
        self._estimator = estimator
        self._by_name = by_name

    def _x(self, frame: pd.DataFrame) -> Any:
        return frame if self._by_name else frame.to_numpy()

    def predict(self, frame: pd.DataFrame) -> Any:
        return self._estimator.predict(self._x(frame))

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self._estimator.predict_proba(self._x(frame))


def _one_input_per_column(pipeline: Any, frame: pd.DataFrame) -> Any:
    """The pipeline as the export takes it: one ONNX input per column. A pipeline that starts
    with a ColumnTransformer selects its columns itself; any other first step (or a bare
    estimator) takes one matrix, which the converter cannot build from several inputs, so a
    passthrough ColumnTransformer joins the columns in the order the model was fitted on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(pipeline.steps[0][1], ColumnTransformer):
        return pipeline
    columns = ColumnTransformer(
        [("columns", "passthrough", list(frame.columns))], sparse_threshold=0.0
    ).fit(frame)
    return Pipeline([("columns", columns), *pipeline.steps])


def from_sklearn(source: Source, request: Request) -> Conversion:
    import sklearn
    from sklearn.base import is_classifier, is_regressor
    from sklearn.pipeline import Pipeline

    estimator = load_sklearn(source, request.trust_pickle, request.trusted_types)
    name = type(estimator).__name__
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    final_name = type(final).__name__
    if is_classifier(estimator):
        task = _decided_task("classification", request.task, final_name)
        if not hasattr(estimator, "predict_proba"):
            raise ModelImportError(
                f"{final_name} has no predict_proba: modelship serves class probabilities, so "
                "import a classifier that has them (e.g. SVC(probability=True))"
            )
    elif is_regressor(estimator):
        task = _decided_task("regression", request.task, final_name)
    else:
        raise ModelImportError(
            f"{final_name} is neither a classifier nor a regressor: modelship serves predictions"
        )
    declared = getattr(estimator, "feature_names_in_", None)
    features = choose_features(
        [str(c) for c in declared] if declared is not None else None,
        getattr(estimator, "n_features_in_", None),
        request.columns,
        f"the {name}",
    )
    kinds = datamod.infer_kinds(request.frame, features, request.numeric, request.categorical)
    _check_convertible(estimator)
    pipeline = _one_input_per_column(
        estimator if isinstance(estimator, Pipeline) else Pipeline([("model", estimator)]),
        request.frame[features],
    )
    try:
        onnx_bytes, input_names = export_onnx(
            pipeline, kinds, task, advice="check --numeric/--categorical for each column"
        )
    except ExportError as exc:
        raise ModelImportError(exc.message) from exc
    classes = [str(c) for c in estimator.classes_] if task == "classification" else None
    params = final.get_params()
    return Conversion(
        onnx_bytes=onnx_bytes,
        features=features,
        kinds=kinds,
        input_names=input_names,
        task=task,
        classes=classes,
        original=_SklearnOriginal(estimator, declared is not None),
        estimator=final_name,
        params=params,
        library="scikit-learn",
        library_version=sklearn.__version__,  # a different one is refused when loading
        converter=f"skl2onnx {_version('skl2onnx')}",
        versions={"skops": _version("skops")} if source.format == "skops" else {},
        fitted=pipeline,
    )


# ---------------------------------------------------------------- boosters


def _softmax(margins: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)


class _BoosterOriginal:
    """A booster's own predictions: probabilities per class, labels as the argmax index."""

    def __init__(self, probabilities: Callable[[pd.DataFrame], Any], task: Task) -> None:
        self._raw = probabilities
        self._task = task

    def predict(self, frame: pd.DataFrame) -> Any:
        if self._task == "regression":
            return np.asarray(self._raw(frame)).reshape(-1)
        return self.predict_proba(frame).argmax(axis=1)

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        values = np.asarray(self._raw(frame), dtype=np.float64)
        return values if values.ndim == 2 else np.column_stack([1 - values, values])


XGBOOST_CLASSIFICATION = ("binary:logistic", "multi:softprob", "multi:softmax")
XGBOOST_REGRESSION = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror")


def from_xgboost(source: Source, request: Request) -> Conversion:
    import xgboost
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(source.data))
    except xgboost.core.XGBoostError as exc:
        raise ModelImportError(f"{source.path.name} cannot be loaded by XGBoost: {exc}") from exc
    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    if objective in XGBOOST_CLASSIFICATION:
        task = _decided_task("classification", request.task, f"objective {objective}")
    elif objective in XGBOOST_REGRESSION:
        task = _decided_task("regression", request.task, f"objective {objective}")
    else:
        raise ModelImportError(
            f"XGBoost objective {objective} is not supported; supported: "
            f"{', '.join(XGBOOST_CLASSIFICATION + XGBOOST_REGRESSION)}"
        )
    if "c" in (booster.feature_types or []):
        raise ModelImportError(
            "the XGBoost model has categorical features, which the ONNX converter does not "
            "support: train it with numeric (for example one-hot) columns"
        )
    names = list(booster.feature_names) if booster.feature_names else None
    features = choose_features(names, booster.num_features(), request.columns, "the XGBoost model")
    kinds = _numeric_only(request, features, "the XGBoost model")
    plain = booster.copy()
    plain.feature_names = None  # the converter reads feature indices (f0, f1, ...) only
    plain.feature_types = None
    model = _converted(
        lambda: convert_xgboost(
            plain, initial_types=[("input", FloatTensorType([None, len(features)]))]
        ),
        "XGBoost",
    )
    serving = adapt(model, features, kinds, {}, task)

    def probabilities(frame: pd.DataFrame) -> Any:
        matrix = xgboost.DMatrix(_matrix(frame, features), feature_names=booster.feature_names)
        if objective == "multi:softmax":  # predict() gives class indices: recover probabilities
            return _softmax(booster.predict(matrix, output_margin=True))
        return booster.predict(matrix)

    written = json.loads(source.data).get("version") if source.format == "xgboost-json" else None
    return Conversion(
        onnx_bytes=serving.model.SerializeToString(),
        features=features,
        kinds=serving.kinds,
        input_names=serving.input_names,
        task=task,
        classes=serving.classes,
        original=_BoosterOriginal(probabilities, task),
        estimator="xgboost.Booster",
        params={"objective": objective, "num_features": booster.num_features()},
        library="xgboost",
        library_version=".".join(map(str, written)) if written else None,
        converter=f"onnxmltools {_version('onnxmltools')}",
        versions={"xgboost": xgboost.__version__, "onnxmltools": _version("onnxmltools")},
    )


LIGHTGBM_CLASSIFICATION = ("binary", "multiclass", "multiclassova")
LIGHTGBM_REGRESSION = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")


def from_lightgbm(source: Source, request: Request) -> Conversion:
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    text = source.data.decode("utf-8", errors="replace")
    try:
        booster = lightgbm.Booster(model_str=text)
    except lightgbm.basic.LightGBMError as exc:
        raise ModelImportError(f"{source.path.name} cannot be loaded by LightGBM: {exc}") from exc
    found = re.search(r"^objective=(\S+)", text, re.MULTILINE)
    objective = found.group(1) if found else "unknown"
    if objective in LIGHTGBM_CLASSIFICATION:
        task = _decided_task("classification", request.task, f"objective {objective}")
    elif objective in LIGHTGBM_REGRESSION:
        task = _decided_task("regression", request.task, f"objective {objective}")
    else:
        raise ModelImportError(
            f"LightGBM objective {objective} is not supported; supported: "
            f"{', '.join(LIGHTGBM_CLASSIFICATION + LIGHTGBM_REGRESSION)}"
        )
    # LightGBM stores whitespace in feature names as "_": match those back to the sample's.
    spelled = {re.sub(r"\s", "_", c): c for c in request.columns}
    names = [spelled.get(n, n) for n in booster.feature_name()]
    unnamed = all(re.fullmatch(r"Column_\d+", n) for n in names)  # fitted on an array
    features = choose_features(
        None if unnamed else names, booster.num_feature(), request.columns, "the LightGBM model"
    )
    kinds = _numeric_only(request, features, "the LightGBM model")
    model = _converted(
        lambda: convert_lightgbm(
            booster, initial_types=[("input", FloatTensorType([None, len(features)]))], zipmap=False
        ),
        "LightGBM",
    )
    serving = adapt(model, features, kinds, {}, task)
    decide_as_source(serving.model, booster)
    return Conversion(
        onnx_bytes=serving.model.SerializeToString(),
        features=features,
        kinds=serving.kinds,
        input_names=serving.input_names,
        task=task,
        classes=serving.classes,
        original=_BoosterOriginal(lambda frame: booster.predict(_matrix(frame, features)), task),
        estimator="lightgbm.Booster",
        params={"objective": objective, "num_trees": booster.num_trees()},
        library="lightgbm",
        library_version=None,  # the text format records its format version, not the library's
        converter=f"onnxmltools {_version('onnxmltools')}",
        versions={"lightgbm": lightgbm.__version__, "onnxmltools": _version("onnxmltools")},
    )


def _converted(convert: Callable[[], onnx.ModelProto], library: str) -> onnx.ModelProto:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return convert()
    except Exception as exc:  # the converters raise many unrelated types for "cannot convert"
        raise ModelImportError(
            f"the {library} model cannot be converted to ONNX (onnxmltools): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


# ---------------------------------------------------------------- ONNX


def from_onnx(source: Source, request: Request) -> Conversion:
    model = onnx.load_model_from_string(source.data)
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ModelImportError(
            f"{source.path.name} keeps tensors in external files ({', '.join(external[:5])}): "
            "save it as one file (onnx.save_model(..., save_as_external_data=False))"
        )
    kinds = datamod.infer_kinds(
        request.frame, request.columns, request.numeric, request.categorical
    )
    serving = adapt(model, request.columns, kinds, request.input_map, request.task)
    return Conversion(
        onnx_bytes=serving.model.SerializeToString(),
        features=request.columns,
        kinds=serving.kinds,
        input_names=serving.input_names,
        task=serving.task,
        classes=serving.classes,
        original=OriginalOnnx(source.data, serving),
        estimator="onnx",
        params={
            "producer": model.producer_name,
            "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        },
        library=model.producer_name or "unknown",
        library_version=model.producer_version or None,
        converter="modelship graph adapter",
    )


CONVERTERS: dict[str, Callable[[Source, Request], Conversion]] = {
    "skops": from_sklearn,
    "joblib": from_sklearn,
    "pickle": from_sklearn,
    "xgboost-json": from_xgboost,
    "xgboost-ubj": from_xgboost,
    "lightgbm-text": from_lightgbm,
    "onnx": from_onnx,
}


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
