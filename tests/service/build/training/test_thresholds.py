"""Exports whose features sit on split thresholds decide every split as the source model does
(build/training/thresholds.py), and forests send missing values where scikit-learn does.

First, a feature of 8 consecutive float32 values; each split between two of them is at their
float64 midpoint, which float32 cannot hold and which rounds up for every other pair. Then
float64 rows on, around and between the splits of histogram boosting and LightGBM models,
imported and served every way, and explained."""

from __future__ import annotations

import dataclasses
import io
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm
import numpy as np
import onnx
import pandas as pd
import pytest
import shap
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelship import cli
from modelship.build.training.export import export_onnx, onnx_feeds, run_onnx
from modelship.build.training.models import pipeline_around
from modelship.build.training.options import TrainOptions
from modelship.build.training.train import train
from modelship.contracts.card import FeatureKind, Task
from modelship.model import artifact
from tests.service.server import running_server


def _on_thresholds() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    start = np.nextafter(np.float32(1.0), np.float32(2.0))  # odd last bit: midpoints round up
    values = [start]
    for _ in range(7):
        values.append(np.nextafter(values[-1], np.float32(2.0)))
    steps = np.array(values, dtype=np.float32).astype(np.float64)
    rng = np.random.default_rng(0)
    v = rng.choice(steps, 2_000)
    # Every input is a float32 value, so the rows reach the trees as scikit-learn sees them.
    w = rng.normal(size=2_000).astype(np.float32).astype(np.float64)
    return pd.DataFrame({"v": v, "w": w}), np.searchsorted(steps, v) * 10.0 + w


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingRegressor(max_iter=20, random_state=0),
        LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
        LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_splits_on_float64_thresholds_decide_as_the_source(estimator: Any) -> None:
    x, y = _on_thresholds()
    task: Task = "regression" if "Regressor" in type(estimator).__name__ else "classification"
    target = y if task == "regression" else (y // 10 % 3).astype(int).astype(str)
    kinds: dict[str, FeatureKind] = {"v": "numeric", "w": "numeric"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = pipeline_around(estimator, kinds).fit(x, target)
    onnx_bytes, names = export_onnx(pipeline, kinds, task)
    outputs = run_onnx(onnx_bytes, onnx_feeds(x, kinds, names))
    if task == "regression":
        # float32 sums of the leaves; one flipped split moves a row by about 10
        np.testing.assert_allclose(outputs[0].ravel(), pipeline.predict(x), atol=1e-4)
    else:
        np.testing.assert_allclose(outputs[1], pipeline.predict_proba(x), atol=1e-5)
        assert (outputs[0].astype(str) == pipeline.predict(x)).all()


# ------------------------------------------------------------------ float64 inputs near splits
# Histogram boosting and LightGBM compare the float64 input with float64 thresholds. Rows whose
# value sits on a threshold, a few float64 steps either side, and strictly between it and the
# midpoint of the float32 values around it (the inputs no float32 threshold can decide as the
# source does: a float32 input rounds them onto one side), imported and served every way.

NUMERIC = ["age", "bmi", "children"]
ULPS = 3
# (target, the classes' source) for each task; "smoker" and "region" are text.
TARGETS = {"regression": "charges", "binary": "smoker", "multiclass": "region"}


def _near(threshold: float) -> tuple[list[float], set[float]]:
    """The threshold, ULPS float64 steps either side, and values between it and the midpoint of
    the two float32 values around it (the midpoint itself included); and those last values."""
    values, up, down = {threshold}, threshold, threshold
    for _ in range(ULPS):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        values |= {float(up), float(down)}
    below = np.float32(threshold)
    if float(below) > threshold:
        below = np.nextafter(below, np.float32(-np.inf))
    above = np.nextafter(below, np.float32(np.inf))
    midpoint = (float(below) + float(above)) / 2
    toward = np.nextafter(midpoint, threshold)
    between = {midpoint, float(toward), (threshold + midpoint) / 2} - {threshold}
    return sorted(values | between), between


def _splits(estimator: Any) -> list[tuple[int, float]]:
    """(feature index, float64 threshold) of every numeric split, read from the source model."""
    found: set[tuple[int, float]] = set()
    if isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        for stage in estimator._predictors:
            for predictor in stage:
                nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
                found |= {(int(f), float(t)) for f, t in nodes[["feature_idx", "num_threshold"]]}
        return sorted(found)
    booster = getattr(estimator, "booster_", estimator)
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.add((int(node["split_feature"]), float(node["threshold"])))
            stack += [node["left_child"], node["right_child"]]
    return sorted(found)


def _sharp_rows(splits: list[tuple[int, float]], base: pd.DataFrame) -> pd.DataFrame:
    """One row per value near each split on a numeric input, the other columns from `base`;
    its attribute `between` lists the rows strictly between a threshold and its midpoint."""
    rows: list[dict[str, Any]] = []
    between: list[int] = []
    for feature, threshold in splits:
        if feature >= len(NUMERIC):  # a one-hot column: 0 or 1, far from its split
            continue
        values, inside = _near(threshold)
        for value in values:
            row = {str(k): v for k, v in base.iloc[len(rows) % len(base)].items()}
            row[NUMERIC[feature]] = value
            if value in inside:
                between.append(len(rows))
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["between"] = between
    return frame


@dataclasses.dataclass(frozen=True)
class _Case:
    """A model file to import, its sample (with the target), rows near its splits, and what the
    source model answers for them: values (regression) or labels and probabilities."""

    path: Path
    sample: pd.DataFrame
    target: str
    rows: pd.DataFrame
    values: np.ndarray[Any, Any] | None = None
    labels: list[str] | None = None
    probabilities: np.ndarray[Any, Any] | None = None
    classes: list[str] | None = None
    # [rows, columns, outputs]: shap's TreeExplainer (histogram boosting) or LightGBM's own
    # TreeSHAP (pred_contrib), in the space the trees add in, one-hot columns summed; None for a
    # native file (explained by interventional TreeSHAP against the sample: additivity only).
    contributions: np.ndarray[Any, Any] | None = None


def _pipeline_case(family: str, task: str, frame: pd.DataFrame, work: Path) -> _Case:
    """A joblib pipeline as `modelship train` builds it (imputer, one-hot) around the model."""
    target = TARGETS[task]
    x = frame.drop(columns=list({target, "charges"}))
    kinds: dict[str, FeatureKind] = {
        str(c): "numeric" if c in NUMERIC else "categorical" for c in x
    }
    estimator: Any = {
        ("hgb", "regression"): HistGradientBoostingRegressor,
        ("hgb", "classification"): HistGradientBoostingClassifier,
        ("lightgbm", "regression"): partial(LGBMRegressor, verbose=-1),
        ("lightgbm", "classification"): partial(LGBMClassifier, verbose=-1),
    }[family, "regression" if task == "regression" else "classification"]
    size = {"max_iter": 30} if family == "hgb" else {"n_estimators": 30}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = pipeline_around(
            estimator(max_leaf_nodes=15, random_state=0, **size)
            if family == "hgb"
            else estimator(num_leaves=15, random_state=0, **size),
            kinds,
        ).fit(x, frame[target])
    numeric = pipeline.named_steps["features"].output_indices_["numeric"]
    assert numeric.start == 0  # the split features' indices are the numeric columns'
    model = pipeline.named_steps["model"]
    rows = _sharp_rows(_splits(model), x)
    joblib.dump(pipeline, work / "pipe.joblib")
    columns = pipeline.named_steps["features"]
    onehot = columns.named_transformers_["categorical"]
    start = columns.output_indices_["categorical"].start
    blocks = iter(
        np.split(
            np.arange(start, columns.output_indices_["categorical"].stop),
            np.cumsum([len(c) for c in onehot.categories_])[:-1],
        )
    )
    groups = [[NUMERIC.index(c)] if c in NUMERIC else list(next(blocks)) for c in x.columns]
    contributions = _reference(model, columns.transform(rows), groups)
    if task == "regression":
        return _Case(
            work / "pipe.joblib",
            x,
            target,
            rows,
            pipeline.predict(rows),
            contributions=contributions,
        )
    return _Case(
        work / "pipe.joblib",
        x,
        target,
        rows,
        labels=[str(label) for label in pipeline.predict(rows)],
        probabilities=pipeline.predict_proba(rows),
        classes=[str(c) for c in pipeline.classes_],
        contributions=contributions,
    )


def _reference(model: Any, features: Any, groups: list[list[int]]) -> np.ndarray[Any, Any]:
    """[rows, columns, outputs] contributions of an outside reference, summed per column."""
    features = np.asarray(features, dtype=np.float64)
    if isinstance(model, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        values = shap.TreeExplainer(model).shap_values(features, check_additivity=False)
        values = np.stack(values, axis=2) if isinstance(values, list) else np.asarray(values)
        values = values if values.ndim == 3 else values[:, :, None]
    else:
        raw = getattr(model, "booster_", model).predict(features, pred_contrib=True)
        outputs = raw.shape[1] // (features.shape[1] + 1)
        values = raw.reshape(len(raw), outputs, -1)[:, :, :-1].transpose(0, 2, 1)
    return np.stack([values[:, g].sum(axis=1) for g in groups], axis=1)


def _native_case(task: str, frame: pd.DataFrame, work: Path) -> _Case:
    """A LightGBM model file (numbers only), imported natively."""
    target = TARGETS[task]
    x = frame[NUMERIC]
    y = frame[target] if task == "regression" else frame[target].astype("category").cat.codes
    objectives: dict[str, dict[str, Any]] = {
        "regression": {"objective": "regression"},
        "binary": {"objective": "binary"},
        "multiclass": {"objective": "multiclass", "num_class": int(y.max()) + 1},
    }
    params = objectives[task]
    booster = lightgbm.train(
        {**params, "num_leaves": 15, "verbose": -1, "seed": 0}, lightgbm.Dataset(x, y), 30
    )
    booster.save_model(work / "model.txt")
    rows = _sharp_rows(_splits(booster), x)
    raw = np.asarray(booster.predict(rows.to_numpy()))
    if task == "regression":
        return _Case(work / "model.txt", x.assign(**{target: y}), target, rows, raw)
    proba = raw if raw.ndim == 2 else np.column_stack([1 - raw, raw])
    return _Case(
        work / "model.txt",
        x.assign(**{target: y}),
        target,
        rows,
        labels=[str(i) for i in proba.argmax(axis=1)],
        probabilities=proba,
        classes=[str(i) for i in range(proba.shape[1])],
    )


CASES = [
    *[("pipeline", family, task) for family in ("hgb", "lightgbm") for task in TARGETS],
    *[("native", "lightgbm", task) for task in TARGETS],
]


@pytest.fixture(scope="module", params=CASES, ids="-".join)
def imported(
    request: pytest.FixtureRequest,
    insurance_frame: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[_Case, Path]:
    """The case imported with the default parity tolerance, its rows near splits in the sample."""
    how, family, task = request.param
    work = tmp_path_factory.mktemp(f"{how}-{family}-{task}")
    if how == "pipeline":
        case = _pipeline_case(family, task, insurance_frame, work)
    else:
        case = _native_case(task, insurance_frame, work)
    # The sample holds the sharp rows too (target: the source's answer), so parity judges them.
    answers = case.values if case.values is not None else case.labels
    sample = pd.concat([case.sample, case.rows.assign(**{case.target: answers})])
    sample.to_csv(work / "sample.csv", index=False, float_format="%.17g")
    out = work / "artifact"
    trust = ["--trust-pickle"] if how == "pipeline" else []
    code = cli.main(
        [
            "import", "--quiet", str(case.path), *trust, "--sample", str(work / "sample.csv"),
            "--target", case.target, "--no-capacity", "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    return case, out


def _assert_as_source(case: _Case, labels: list[str], values: Any, rows: slice) -> None:
    if case.values is not None:
        np.testing.assert_allclose(np.asarray(values, dtype=float), case.values[rows], rtol=1e-5)
        return
    assert case.labels is not None and case.probabilities is not None
    assert labels == case.labels[rows]
    np.testing.assert_allclose(np.asarray(values, dtype=float), case.probabilities[rows], atol=1e-5)


def test_imported_at_the_default_parity_tolerance(imported: tuple[_Case, Path]) -> None:
    case, out = imported
    card = artifact.load(out).card
    assert card.parity.tolerance == 1e-4
    assert card.parity.rows == len(case.sample) + len(case.rows)
    model = onnx.load(out / "model.onnx")
    (trees,) = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    assert "nodes_values_as_tensor" in {a.name for a in trees.attribute}
    onnx.checker.check_model(model, full_check=True)


def test_rows_near_splits_served_as_the_source_decides(
    imported: tuple[_Case, Path], tmp_path: Path
) -> None:
    """JSON records one by one, a JSON batch, a CSV upload and the batch transform, on rows on
    and around every split of the model."""
    case, out = imported
    records = case.rows.to_dict("records")
    between = case.rows.attrs["between"][:: max(1, len(case.rows.attrs["between"]) // 25)]
    assert len(between) >= 10
    text = case.rows.to_csv(index=False, float_format="%.17g")  # each float64 exactly
    with running_server("--artifact", str(out), cwd=tmp_path) as server:
        for i in between:
            one = httpx.post(f"{server.url}/predict", json=records[i], timeout=30).json()
            _assert_as_source(case, *_answer(case, [one]), slice(i, i + 1))
        batch = httpx.post(f"{server.url}/predict/batch", json=records, timeout=60).json()
        _assert_as_source(case, *_answer(case, batch["predictions"]), slice(None))
        answered = server.predict_csv(text)
        explained = httpx.post(f"{server.url}/explain", json=records, timeout=120).json()
    _assert_explained(case, explained["predictions"])
    _assert_as_source(case, *_columns(case, pd.read_csv(io.StringIO(answered))), slice(None))
    (tmp_path / "rows.csv").write_text(text)
    assert (
        cli.main(["predict", str(out), str(tmp_path / "rows.csv"), "-o", str(tmp_path / "p.csv")])
        == 0
    )
    _assert_as_source(case, *_columns(case, pd.read_csv(tmp_path / "p.csv")), slice(None))


def _answer(case: _Case, predictions: list[dict[str, Any]]) -> tuple[list[str], Any]:
    if case.values is not None:
        return [], [p["prediction"] for p in predictions]
    assert case.classes is not None
    labels = [str(p["prediction"]) for p in predictions]
    return labels, [[p["probabilities"][c] for c in case.classes] for p in predictions]


def _columns(case: _Case, frame: pd.DataFrame) -> tuple[list[str], Any]:
    if case.values is not None:
        return [], frame[f"predicted_{case.target}"]
    assert case.classes is not None
    labels = frame[f"predicted_{case.target}"].astype(str).tolist()
    return labels, frame[[f"probability_{c}" for c in case.classes]]


def _assert_explained(case: _Case, predictions: list[dict[str, Any]]) -> None:
    """Each row's contributions add up to its prediction (in the space the trees add in) and
    match the reference's."""
    columns = list(case.rows.columns)
    for i, row in enumerate(predictions):
        explanation = row["explanation"]
        names = ["prediction"] if case.classes is None else list(explanation["base"])
        bases = (
            [explanation["base"]] if case.classes is None else list(explanation["base"].values())
        )
        per_output = (
            [explanation["contributions"]]
            if case.classes is None
            else [explanation["contributions"][c] for c in names]
        )
        ours = np.array([[c[column] for c in per_output] for column in columns])
        if case.contributions is None:
            assert explanation["method"] == "interventional TreeSHAP"
        else:
            assert explanation["method"] == "path-dependent TreeSHAP"
            scale = max(1e-12, float(np.abs(case.contributions).max()))
            assert np.abs(ours - case.contributions[i]).max() <= 1e-6 * scale
        margins = np.array(bases) + ours.sum(axis=0)
        if case.classes is None:
            assert margins[0] == pytest.approx(row["prediction"], rel=1e-5)
        elif len(names) == 1:  # two classes: the logistic of the second's margin
            p = 1 / (1 + np.exp(-margins[0]))
            assert p == pytest.approx(row["probabilities"][names[0]], abs=1e-5)
        else:
            p = np.exp(margins - margins.max())
            served = [row["probabilities"][c] for c in names]
            np.testing.assert_allclose(p / p.sum(), served, atol=1e-5)


@pytest.mark.parametrize("model", ["lightgbm", "hist_gradient_boosting"])
def test_training_exports_the_trees_in_float64(
    model: str, insurance_csv: Path, tmp_path: Path
) -> None:
    """What `modelship train` writes for these families: the same export as the imports above,
    its trees holding float64 thresholds (many of them no float32) and taking float64 features."""
    train(
        TrainOptions(data=insurance_csv, target="charges", output=tmp_path, model=model),
        lambda _: None,
    )
    graph = onnx.shape_inference.infer_shapes(onnx.load(tmp_path / "model.onnx")).graph
    (trees,) = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in trees.attribute}
    assert "nodes_values" not in attrs
    thresholds = onnx.numpy_helper.to_array(attrs["nodes_values_as_tensor"])
    splits = thresholds[np.array(attrs["nodes_modes"]) != b"LEAF"]
    assert thresholds.dtype == np.float64
    assert (splits.astype(np.float32).astype(np.float64) != splits).sum() > 100  # bmi's
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info]}
    assert types[trees.input[0]] == onnx.TensorProto.DOUBLE


@pytest.mark.parametrize("forest", [RandomForestRegressor, ExtraTreesRegressor])
@pytest.mark.parametrize("blanks_in_training", [True, False])
def test_a_forest_sends_missing_values_where_scikit_learn_does(
    forest: Any, blanks_in_training: bool, insurance_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """A forest that NaN reaches (no imputer): scikit-learn sends it down the side each split
    learnt (or, for a feature without blanks in training, the side most samples took); served
    over HTTP the same way. Imported with blanks in the sample at the default tolerance."""
    frame = insurance_frame[[*NUMERIC, "charges"]].copy()
    rng = np.random.default_rng(0)
    blanks = frame.copy()
    for column in NUMERIC:
        blanks.loc[rng.random(len(frame)) < 0.2, column] = np.nan
    fitted_on = blanks if blanks_in_training else frame
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("numbers", "passthrough", NUMERIC)])),
            ("model", forest(n_estimators=20, max_depth=8, random_state=0)),
        ]
    ).fit(fitted_on[NUMERIC], fitted_on["charges"])
    joblib.dump(pipeline, tmp_path / "pipe.joblib")
    blanks.to_csv(tmp_path / "sample.csv", index=False)
    out = tmp_path / "artifact"
    code = cli.main(
        [
            "import", "--quiet", str(tmp_path / "pipe.joblib"), "--trust-pickle",
            "--sample", str(tmp_path / "sample.csv"), "--target", "charges", "--no-capacity",
            "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    rows = blanks[NUMERIC]
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")
    ]
    with running_server("--artifact", str(out), cwd=tmp_path) as server:
        batch = httpx.post(f"{server.url}/predict/batch", json=records, timeout=60).json()
    served = [p["prediction"] for p in batch["predictions"]]
    np.testing.assert_allclose(served, pipeline.predict(rows), rtol=1e-5)


def _tracks(onnx_bytes: bytes) -> list[int]:
    (trees,) = [
        n for n in onnx.load_from_string(onnx_bytes).graph.node if "TreeEnsemble" in n.op_type
    ]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in trees.attribute}
    return list(attrs.get("nodes_missing_value_tracks_true", []))


@pytest.mark.parametrize(
    ("numbers", "sides"),
    [
        (SimpleImputer(strategy="median"), False),
        (make_pipeline(SimpleImputer(), StandardScaler()), False),
        (StandardScaler(), True),
        ("passthrough", True),
    ],
    ids=["imputer", "imputer then scaler", "scaler", "passthrough"],
)
def test_missing_value_sides_only_where_nan_reaches_the_forest(
    numbers: Any, sides: bool, insurance_frame: pd.DataFrame
) -> None:
    """onnxruntime checks every split for NaN when a forest has missing-value sides (a cost,
    docs/import.md): they are written only where a blank can get past the preprocessing, and
    the served answers equal scikit-learn's on rows with blanks either way."""
    x = insurance_frame[[*NUMERIC, "sex"]].copy()
    x.loc[np.random.default_rng(0).random(len(x)) < 0.2, "bmi"] = np.nan
    columns = ColumnTransformer([("numbers", numbers, NUMERIC), ("sex", OneHotEncoder(), ["sex"])])
    forest = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0)
    pipeline = Pipeline([("features", columns), ("model", forest)]).fit(
        x, insurance_frame["charges"]
    )
    kinds: dict[str, Any] = {**dict.fromkeys(NUMERIC, "numeric"), "sex": "categorical"}
    onnx_bytes, names = export_onnx(pipeline, kinds, "regression")
    assert any(_tracks(onnx_bytes)) is sides
    feeds = onnx_feeds(x, kinds, names)
    served = run_onnx(onnx_bytes, feeds)[0].reshape(-1)
    np.testing.assert_allclose(served, pipeline.predict(x), rtol=1e-5)
