"""Numbers in float64, end to end: a StandardScaler + forest pipeline (the one of issue 35) imports
with the default parity tolerance and is served as scikit-learn predicts, on rows whose scaled
values sit on the trees' thresholds, over every route, with explanations that match shap."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import onnx
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelship import cli
from modelship.build.training.export import export_onnx, onnx_feeds, run_onnx
from modelship.contracts.card import FeatureKind
from modelship.model import artifact
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictor
from tests.service.server import running_server

NUMERIC = ["age", "bmi", "children"]
CATEGORICAL = ["sex", "smoker", "region"]
ULPS = 3  # float64 steps either side of each threshold


def _issue_pipeline(x: pd.DataFrame, y: pd.Series, numeric: Any = None) -> Pipeline:
    """Issue 35's repro: one-hot + StandardScaler + RandomForestRegressor(30, depth 8)."""
    columns = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("num", numeric or StandardScaler(), NUMERIC),
        ]
    )
    forest = RandomForestRegressor(n_estimators=30, max_depth=8, random_state=0)
    return Pipeline([("features", columns), ("model", forest)]).fit(x, y)


@pytest.fixture(scope="module")
def imported(
    insurance_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Pipeline, Path]:
    work = tmp_path_factory.mktemp("issue35")
    x, y = insurance_frame.drop(columns="charges"), insurance_frame["charges"]
    pipeline = _issue_pipeline(x, y)
    joblib.dump(pipeline, work / "pipe.joblib")
    insurance_frame.to_csv(work / "insurance.csv", index=False)
    out = work / "artifact"
    code = cli.main(
        [
            "import", "--quiet", str(work / "pipe.joblib"), "--trust-pickle",
            "--sample", str(work / "insurance.csv"), "--target", "charges",
            "--no-capacity", "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    return pipeline, out


def _on_thresholds(pipeline: Pipeline, base: pd.DataFrame) -> pd.DataFrame:
    """Rows whose scaled numbers land on each split threshold of the forest and a few float64
    steps either side: the values float32 cannot hold, where a float32 input would go astray."""
    columns: ColumnTransformer = pipeline.named_steps["features"]
    numeric = columns.named_transformers_["num"]
    scaler: StandardScaler = numeric[-1] if isinstance(numeric, Pipeline) else numeric
    first = columns.output_indices_["num"].start
    rows: list[dict[str, Any]] = []
    for tree in pipeline.named_steps["model"].estimators_:
        nodes = tree.tree_
        for feature, threshold in zip(nodes.feature, nodes.threshold, strict=True):
            k = feature - first
            if not 0 <= k < len(NUMERIC):
                continue
            raw = threshold * scaler.scale_[k] + scaler.mean_[k]
            for step in range(-ULPS, ULPS + 1):
                value = raw
                for _ in range(abs(step)):
                    value = np.nextafter(value, np.inf if step > 0 else -np.inf)
                row = {str(k): v for k, v in base.iloc[len(rows) % len(base)].items()}
                row[NUMERIC[k]] = float(value)
                rows.append(row)
    return pd.DataFrame(rows)


def test_the_issues_forest_imports_with_the_default_tolerance(
    imported: tuple[Pipeline, Path], insurance_frame: pd.DataFrame
) -> None:
    """Refused before (the export differed by up to 2,323.92 with float32 inputs)."""
    _, out = imported
    card = artifact.load(out).card
    assert card.parity.tolerance == 1e-4  # the default, not raised
    assert card.parity.rows == len(insurance_frame)
    assert card.parity.max_abs_diff < 0.05  # the float32 sum of the leaves: no split flipped
    assert {f.name: f.dtype for f in card.features if f.kind == "numeric"} == dict.fromkeys(
        NUMERIC, "float64"
    )
    declared = {
        i.name: i.type.tensor_type.elem_type for i in onnx.load(out / "model.onnx").graph.input
    }
    assert all(declared[card.feature(n).input_name] == onnx.TensorProto.DOUBLE for n in NUMERIC)


def test_scaled_values_on_thresholds_decide_as_scikit_learn(
    imported: tuple[Pipeline, Path], insurance_frame: pd.DataFrame
) -> None:
    pipeline, out = imported
    rows = _on_thresholds(pipeline, insurance_frame.drop(columns="charges"))
    expected = pipeline.predict(rows)
    # The rows are sharp: fed as float32 (what the server did before), many decide otherwise.
    rounded = rows.astype(dict.fromkeys(NUMERIC, np.float32)).astype(dict.fromkeys(NUMERIC, float))
    assert (np.abs(pipeline.predict(rounded) - expected) > 1.0).sum() > 100
    predictor = Predictor(artifact.load(out))
    served = predictor.predict(RecordsCodec(predictor.schema).decode(rows.to_dict("records")))
    assert served.values is not None
    np.testing.assert_allclose(served.values, expected, rtol=1e-5)


def test_an_imputer_before_the_scaler_keeps_the_value(insurance_frame: pd.DataFrame) -> None:
    """SimpleImputer + StandardScaler: imputed and scaled in float64, with the float64 median."""
    frame = insurance_frame.copy()
    frame.loc[frame.index[::7], "bmi"] = np.nan
    x, y = frame.drop(columns="charges"), frame["charges"]
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pipeline = _issue_pipeline(x, y, numeric)
    rows = pd.concat([x, _on_thresholds(pipeline, x)], ignore_index=True)
    kinds: dict[str, FeatureKind] = {
        str(c): "numeric" if c in NUMERIC else "categorical" for c in x
    }
    onnx_bytes, names = export_onnx(pipeline, kinds, "regression")
    served = run_onnx(onnx_bytes, onnx_feeds(rows, kinds, names))[0].reshape(-1)
    np.testing.assert_allclose(served, pipeline.predict(rows), rtol=1e-5)


def _shap_by_column(pipeline: Pipeline, rows: pd.DataFrame) -> tuple[Any, float]:
    """shap's TreeExplainer on the original forest, one-hot columns summed to their column."""
    columns: ColumnTransformer = pipeline.named_steps["features"]
    features = np.asarray(columns.transform(rows), dtype=np.float32)  # dense: few columns
    explainer = shap.TreeExplainer(pipeline.named_steps["model"])
    values = explainer.shap_values(features, check_additivity=False)
    by_column = {}
    for name, indices in columns.output_indices_.items():
        if name == "cat":
            encoder: OneHotEncoder = columns.named_transformers_["cat"]
            start = indices.start
            for column, categories in zip(CATEGORICAL, encoder.categories_, strict=True):
                by_column[column] = values[:, start : start + len(categories)].sum(axis=1)
                start += len(categories)
        elif name == "num":
            for k, column in enumerate(NUMERIC):
                by_column[column] = values[:, indices.start + k]
    return pd.DataFrame(by_column), float(np.asarray(explainer.expected_value).reshape(-1)[0])


def test_served_over_http_as_scikit_learn_predicts_and_explains(
    imported: tuple[Pipeline, Path], insurance_frame: pd.DataFrame, tmp_path: Path
) -> None:
    pipeline, out = imported
    rows = _on_thresholds(pipeline, insurance_frame.drop(columns="charges")).head(300)
    expected = pipeline.predict(rows)
    records = rows.to_dict("records")
    theirs, base = _shap_by_column(pipeline, rows)
    with running_server("--artifact", str(out), cwd=tmp_path) as server:
        single = [
            httpx.post(f"{server.url}/predict", json=record, timeout=30).json()["prediction"]
            for record in records[:40]
        ]
        np.testing.assert_allclose(single, expected[:40], rtol=1e-5)
        batch = httpx.post(f"{server.url}/predict/batch", json=records, timeout=30).json()
        np.testing.assert_allclose(
            [p["prediction"] for p in batch["predictions"]], expected, rtol=1e-5
        )
        # 17 significant digits: each float64 exactly, as JSON carries it.
        text = rows.to_csv(index=False, float_format="%.17g")
        predicted = pd.read_csv(io.StringIO(server.predict_csv(text)))["predicted_charges"]
        np.testing.assert_allclose(predicted, expected, rtol=1e-5)
        explained = httpx.post(f"{server.url}/explain", json=records, timeout=60).json()
        metadata = httpx.get(f"{server.url}/v2/models/{artifact.load(out).card.name}").json()
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        **dict.fromkeys(NUMERIC, "FP64"),
        **dict.fromkeys(CATEGORICAL, "BYTES"),
    }
    for i, row in enumerate(explained["predictions"]):
        explanation = row["explanation"]
        assert explanation["method"] == "path-dependent TreeSHAP"
        contributions = explanation["contributions"]
        assert explanation["base"] + sum(contributions.values()) == pytest.approx(
            row["prediction"], rel=1e-5
        )
        ours = np.array([contributions[c] for c in theirs.columns])
        scale = np.abs(theirs.to_numpy()).max()
        assert np.abs(ours - theirs.iloc[i].to_numpy()).max() <= 1e-6 * scale
        assert explanation["base"] == pytest.approx(base, rel=1e-6)


def test_an_artifact_with_float32_inputs_answers_as_it_did(tmp_path: Path) -> None:
    """tests/testdata/float32-artifact was made by the code before float64 inputs (its card has
    no `dtype`); answers.json holds what that code's predictor answered for its rows."""
    old = Path(__file__).parents[3] / "testdata" / "float32-artifact"
    golden = json.loads((old / "answers.json").read_text())
    predictor = Predictor(artifact.load(old))
    assert set(predictor.schema.dtype.values()) == {np.dtype(np.float32), np.dtype(object)}
    with running_server("--artifact", str(old), cwd=tmp_path) as server:
        batch = httpx.post(f"{server.url}/predict/batch", json=golden["rows"], timeout=30).json()
        explained = httpx.post(f"{server.url}/explain", json=golden["rows"], timeout=30).json()
        metadata = httpx.get(f"{server.url}/v2/models/{predictor.card.name}").json()
    served = np.array([p["prediction"] for p in batch["predictions"]], dtype=np.float32)
    assert served.tolist() == np.array(golden["predictions"], dtype=np.float32).tolist()
    columns = [f.name for f in predictor.card.features]
    for row, contributions in zip(explained["predictions"], golden["contributions"], strict=True):
        ours = [row["explanation"]["contributions"][c] for c in columns]
        np.testing.assert_allclose(ours, contributions, rtol=1e-9, atol=1e-9)
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        **dict.fromkeys(NUMERIC, "FP32"),
        **dict.fromkeys(CATEGORICAL, "BYTES"),
    }
