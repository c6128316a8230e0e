"""`modelship import`: every format round-trips with parity against the original library, and
every refusal is one clear line with exit code 2."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm
import numpy as np
import onnx
import pandas as pd
import pytest
import sklearn
import skops.io
import xgboost
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelship import artifact, cli
from modelship.codecs.records import RecordsCodec
from modelship.predictor import Predictor
from tests.service.object_stores import BUCKET, s3_server
from tests.service.server import running_server
from tests.service.test_cli import modelship

NUMERIC = ["age", "bmi", "children"]
CATEGORICAL = ["sex", "smoker", "region"]


def _pipeline(
    estimator: Any, categorical: list[str] = CATEGORICAL, scaled: bool = True
) -> Pipeline:
    # Trees are not scaled: a scaled float64 value can round across a split in float32
    # (parity refuses such a model; see test_refusals_are_one_line).
    steps = [SimpleImputer(strategy="median"), *([StandardScaler()] if scaled else [])]
    numeric = make_pipeline(*steps)
    encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    columns = ColumnTransformer([("num", numeric, NUMERIC), ("cat", encode, categorical)])
    return Pipeline([("features", columns), ("model", estimator)])


def _served(out: Path, frame: pd.DataFrame) -> Any:
    """What the server's predictor answers for these rows (the same code path as HTTP)."""
    predictor = Predictor(artifact.load(out))
    records = frame[[f.name for f in predictor.card.features]].to_dict(orient="records")
    return predictor.predict(RecordsCodec(predictor.schema).decode(records))


def _import(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI in-process (what a subprocess runs, without paying the start-up per refusal)."""
    code = cli.main(["import", "--quiet", *args])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()[-1] if captured.err.strip() else ""


@pytest.fixture(scope="module")
def insurance(insurance_frame: pd.DataFrame) -> pd.DataFrame:
    return insurance_frame


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory: pytest.TempPathFactory, insurance: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("sample") / "sample.csv"
    insurance.to_csv(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("saved_as", ["skops", "joblib"])
def test_pipeline_with_categories_round_trips(
    saved_as: str, insurance: pd.DataFrame, sample_csv: Path, tmp_path: Path
) -> None:
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    pipeline = _pipeline(forest, ["sex", "smoker"], scaled=False)
    x = insurance[[*NUMERIC, "sex", "smoker"]]
    pipeline.fit(x, insurance["region"])
    path = tmp_path / f"regions.{saved_as}"
    if saved_as == "skops":
        skops.io.dump(pipeline, path)
    else:
        joblib.dump(pipeline, path)
    sample = tmp_path / "sample.csv"
    insurance.drop(columns="charges").to_csv(sample, index=False)
    out = tmp_path / "artifact"
    # A forest in skops holds types skops asks the user to trust by name.
    trust = ["--trust-pickle"] if saved_as == "joblib" else ["--trust", "sklearn.tree._tree.Tree"]
    args = ("import", str(path), "--sample", str(sample), "--target", "region", *trust)
    if saved_as == "joblib":  # once as a user runs it, once in-process (same code, no start-up)
        result = modelship(*args, "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("model regions (imported-scikit-learn, version ")
    else:
        assert cli.main([*args, "-q", "-o", str(out)]) == 0

    card = artifact.load(out).card
    assert card.task == "classification"
    assert card.classes == ["northeast", "northwest", "southeast", "southwest"]
    assert card.feature("sex").kind == "categorical"
    assert card.feature("bmi").kind == "numeric"
    assert card.parity.rows == len(insurance)
    assert card.parity.label_agreement == 1.0
    assert card.metrics["test"]["accuracy"] > 0.3
    assert card.provenance is not None
    assert card.provenance.format == saved_as
    assert card.provenance.source_sha256 == artifact.sha256_file(path)
    assert card.provenance.trusted_pickle is (saved_as == "joblib")
    assert card.provenance.library_version == sklearn.__version__

    served = _served(out, insurance)
    assert list(served.labels) == list(pipeline.predict(x))
    np.testing.assert_allclose(served.probabilities, pipeline.predict_proba(x), atol=1e-5)


def test_regression_pipeline_without_target_in_sample(
    insurance: pd.DataFrame, tmp_path: Path
) -> None:
    x = insurance[NUMERIC + CATEGORICAL]
    pipeline = _pipeline(Ridge()).fit(x, insurance["charges"])
    path = tmp_path / "charges.skops"
    skops.io.dump(pipeline, path)
    sample = tmp_path / "features.csv"
    x.to_csv(sample, index=False)
    out = tmp_path / "artifact"
    from modelship.importing.importer import ImportOptions, import_model

    card = import_model(ImportOptions(model=path, sample=sample, output=out), lambda _: None)
    assert card.task == "regression"
    assert card.metrics == {}
    assert card.target == "target"
    np.testing.assert_allclose(_served(out, x).values, pipeline.predict(x), rtol=1e-4)


def _iris(iris_csv: Path) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(iris_csv)
    codes = frame["species"].astype("category").cat.codes
    return frame.drop(columns="species"), codes


def _booster_case(
    library: str, task: str, iris_csv: Path, insurance: pd.DataFrame, tmp_path: Path
) -> tuple[Path, pd.DataFrame, Callable[[pd.DataFrame], Any]]:
    if task == "classification":
        x, y = _iris(iris_csv)
    else:
        x, y = insurance[NUMERIC], insurance["charges"]
    if library == "xgboost":
        params = (
            {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
            if task == "classification"
            else {"objective": "reg:squarederror", "max_depth": 4}
        )
        booster = xgboost.train(params, xgboost.DMatrix(x, y), 30)
        path = tmp_path / ("model.ubj" if task == "classification" else "model.json")
        booster.save_model(path)
        return path, x, lambda rows: booster.predict(xgboost.DMatrix(rows))
    params = (
        {"objective": "multiclass", "num_class": 3, "verbose": -1}
        if task == "classification"
        else {"objective": "regression", "verbose": -1}
    )
    lgb = lightgbm.train(params, lightgbm.Dataset(x, y), 30)
    path = tmp_path / "model.txt"
    lgb.save_model(path)
    return path, x, lgb.predict


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_boosters_round_trip(
    library: str, task: str, iris_csv: Path, insurance: pd.DataFrame, tmp_path: Path
) -> None:
    path, x, original = _booster_case(library, task, iris_csv, insurance, tmp_path)
    sample = tmp_path / "sample.csv"
    x.assign(y=_iris(iris_csv)[1] if task == "classification" else insurance["charges"]).to_csv(
        sample, index=False
    )
    out = tmp_path / "artifact"
    from modelship.importing.importer import ImportOptions, import_model

    card = import_model(
        ImportOptions(model=path, sample=sample, output=out, target="y"), lambda _: None
    )
    assert card.task == task
    assert card.provenance is not None and card.provenance.library == library
    assert card.footprint is not None and card.footprint.model_bytes == card.artifact.onnx_bytes
    served = _served(out, x)
    expected = np.asarray(original(x))
    if task == "regression":
        assert "r2" in card.metrics["test"]
        np.testing.assert_allclose(served.values, expected, rtol=1e-4, atol=1e-2)
    else:
        assert card.classes == ["0", "1", "2"]
        assert card.metrics["test"]["accuracy"] > 0.9
        np.testing.assert_allclose(served.probabilities, expected, atol=1e-5)
        assert list(served.labels) == [str(i) for i in expected.argmax(axis=1)]  # text, as trained


SMOKER_TEXT = ["sex", "region"]


def _onnx_with_own_names(insurance: pd.DataFrame, tmp_path: Path) -> tuple[Path, Pipeline]:
    """skl2onnx used directly: its own input names (in_age, ...) and its default ZipMap output."""
    renamed = insurance[NUMERIC + SMOKER_TEXT].rename(columns=lambda c: f"in_{c}")
    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), [f"in_{c}" for c in NUMERIC]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), [f"in_{c}" for c in SMOKER_TEXT]),
        ]
    )
    tool_pipeline = Pipeline([("features", columns), ("model", LogisticRegression(max_iter=500))])
    tool_pipeline.fit(renamed, insurance["smoker"])
    types = [(f"in_{c}", FloatTensorType([None, 1])) for c in NUMERIC] + [
        (f"in_{c}", StringTensorType([None, 1])) for c in SMOKER_TEXT
    ]
    path = tmp_path / "smoker.onnx"
    onnx.save_model(to_onnx(tool_pipeline, initial_types=types), path)
    return path, tool_pipeline


def test_onnx_from_another_tool_with_input_map(insurance: pd.DataFrame, tmp_path: Path) -> None:
    path, tool_pipeline = _onnx_with_own_names(insurance, tmp_path)
    out = tmp_path / "artifact"
    mapping = {c: f"in_{c}" for c in NUMERIC + SMOKER_TEXT}
    from modelship.importing.importer import ImportOptions, import_model

    card = import_model(
        ImportOptions(
            model=path,
            sample=_without(insurance, "charges", tmp_path),
            output=out,
            target="smoker",
            input_map=mapping,
        ),
        lambda _: None,
    )
    assert card.classes == ["no", "yes"]
    assert card.feature("age").input_name == "in_age"
    assert card.provenance is not None and card.provenance.library == "skl2onnx"
    renamed = insurance[NUMERIC + SMOKER_TEXT].rename(columns=lambda c: f"in_{c}")
    served = _served(out, insurance)
    assert list(served.labels) == list(tool_pipeline.predict(renamed))
    np.testing.assert_allclose(
        served.probabilities, tool_pipeline.predict_proba(renamed), atol=1e-5
    )


def _without(frame: pd.DataFrame, column: str, tmp_path: Path) -> Path:
    path = tmp_path / f"without-{column}.csv"
    frame.drop(columns=column).to_csv(path, index=False)
    return path


def test_onnx_with_one_matrix_input_and_double(iris_csv: Path, tmp_path: Path) -> None:
    """The common [N, features] double input: wrapped so the server feeds one column each."""
    x, y = _iris(iris_csv)
    model = LogisticRegression(max_iter=500).fit(x.to_numpy(), y)
    from skl2onnx.common.data_types import DoubleTensorType

    # Probabilities as a double tensor (skl2onnx's ZipMap cannot take doubles).
    exported = to_onnx(
        model,
        initial_types=[("X", DoubleTensorType([None, 4]))],
        options={id(model): {"zipmap": False}},
    )
    path = tmp_path / "iris.onnx"
    onnx.save_model(exported, path)
    sample = tmp_path / "sample.csv"
    x.to_csv(sample, index=False)
    out = tmp_path / "artifact"
    from modelship.importing.importer import ImportOptions, import_model

    card = import_model(ImportOptions(model=path, sample=sample, output=out), lambda _: None)
    # Iris's column names ("sepal length (cm)") become safe input names.
    assert [f.input_name for f in card.features] == [re.sub(r"\W", "_", c) for c in x.columns]
    served = _served(out, x)
    np.testing.assert_allclose(served.probabilities, model.predict_proba(x.to_numpy()), atol=1e-5)
    assert list(served.labels) == [str(i) for i in model.predict(x.to_numpy())]


# ---------------------------------------------------------------- refusals


def test_refusals_are_one_line(
    insurance: pd.DataFrame, sample_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = insurance[NUMERIC + CATEGORICAL]
    fitted = _pipeline(Ridge()).fit(x, insurance["charges"])
    skops_file = tmp_path / "model.skops"
    skops.io.dump(fitted, skops_file)
    sample = ["--sample", str(sample_csv), "--target", "charges"]

    # A pickle without --trust-pickle: refused before it is read, saying why.
    pickled = tmp_path / "model.joblib"
    joblib.dump(fitted, pickled)
    code, line = _import(str(pickled), *sample, capsys=capsys)
    assert code == 2 and "loading it runs whatever code its author put in it" in line
    assert "--trust-pickle" in line

    # A file that is not what its extension says, and what it looks like instead.
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(skops_file.read_bytes())
    code, line = _import(str(disguised), *sample, capsys=capsys)
    assert (
        code == 2
        and "model.onnx is not an ONNX model" in line
        and "looks like a skops file" in line
    )
    text = tmp_path / "model.txt"
    text.write_text("hello\n")
    code, line = _import(str(text), *sample, capsys=capsys)
    assert code == 2 and "is not a LightGBM text model" in line

    # Pipeline columns not matching the sample.
    short = tmp_path / "short.csv"
    insurance.drop(columns="bmi").to_csv(short, index=False)
    code, line = _import(
        str(skops_file), "--sample", str(short), "--target", "charges", capsys=capsys
    )
    assert code == 2 and "expects column(s) bmi that the sample does not have" in line
    code, line = _import(str(skops_file), "--sample", str(sample_csv), capsys=capsys)
    assert code == 2 and "the sample has column(s) charges" in line and "--target" in line

    # Untrusted skops types: listed, with how to trust them.
    boosted = tmp_path / "boosted.skops"
    skops.io.dump(
        _pipeline(HistGradientBoostingRegressor(max_iter=5)).fit(x, insurance["charges"]), boosted
    )
    code, line = _import(str(boosted), *sample, capsys=capsys)
    assert code == 2
    assert "types skops does not trust by default" in line
    untrusted = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    assert f"--trust {untrusted}" in line
    # Trusted, it loads; and this export does not reproduce it (float32 inputs flip a split
    # of the boosted trees after scaling): parity fails loudly, naming the worst row.
    out = tmp_path / "trusted"
    code, line = _import(str(boosted), *sample, "--trust", untrusted, "-o", str(out), capsys=capsys)
    assert code == 1
    assert "the ONNX export differs from the original scikit-learn model" in line
    assert "worst at row" in line
    assert not out.exists()

    # An estimator the export does not support: named, with what is supported.
    from sklearn.kernel_ridge import KernelRidge

    odd = tmp_path / "odd.skops"
    skops.io.dump(_pipeline(KernelRidge()).fit(x.head(50), insurance["charges"].head(50)), odd)
    code, line = _import(str(odd), *sample, capsys=capsys)
    assert code == 2 and "cannot export KernelRidge to ONNX" in line and "supports" in line

    # A pickle from another scikit-learn version.
    old = tmp_path / "old.pkl"
    current = sklearn.__version__.encode()
    fake = b"0." + b"9" * (len(current) - 2)
    old.write_bytes(pickle.dumps(fitted).replace(current, fake))
    code, line = _import(str(old), *sample, "--trust-pickle", capsys=capsys)
    assert code == 2
    assert f"saved with scikit-learn {fake.decode()} but {sklearn.__version__} is installed" in line

    # --task contradicting the model.
    code, line = _import(str(skops_file), *sample, "--task", "classification", capsys=capsys)
    assert code == 2 and "does not fit Ridge, which is a regression model" in line


def test_onnx_refusals(
    insurance: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = _onnx_with_own_names(insurance, tmp_path)
    sample = _without(insurance, "charges", tmp_path)
    code, line = _import(str(path), "--sample", str(sample), "--target", "smoker", capsys=capsys)
    assert code == 2
    assert "inputs without a column: in_age, in_bmi" in line and "--input-map" in line
    code, line = _import(
        str(path),
        "--sample",
        str(sample),
        "--target",
        "smoker",
        "--input-map",
        "age=nope",
        capsys=capsys,
    )
    assert code == 2 and "input(s) nope the ONNX model does not have" in line

    # A text column fed to a float input.
    wrong = ",".join(
        [f"{c}=in_{c}" for c in NUMERIC if c != "age"]
        + ["age=in_sex", "sex=in_age", "region=in_region"]
    )
    code, line = _import(
        str(path),
        "--sample",
        str(sample),
        "--target",
        "smoker",
        "--input-map",
        wrong,
        capsys=capsys,
    )
    assert code == 2 and "column sex holds text in the sample but ONNX input in_age" in line

    # Outputs that are neither a regression value nor labels and probabilities.
    x = insurance[NUMERIC]
    two = onnx.helper.make_model(
        onnx.helper.make_graph(
            [
                onnx.helper.make_node("Identity", ["X"], ["a"]),
                onnx.helper.make_node("Identity", ["X"], ["b"]),
            ],
            "two",
            [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, 3])],
            [
                onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [None, 3]),
                onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [None, 3]),
            ],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 13)],
    )
    odd = tmp_path / "two.onnx"
    onnx.save_model(two, odd)
    numbers = tmp_path / "numbers.csv"
    x.to_csv(numbers, index=False)
    code, line = _import(str(odd), "--sample", str(numbers), capsys=capsys)
    assert code == 2 and "needs one probability output" in line and "a tensor(float) [N, 3]" in line
    code, line = _import(str(odd), "--sample", str(numbers), "--task", "regression", capsys=capsys)
    assert code == 2 and "needs one numeric output with one value per row" in line


def test_boosters_take_numbers_only(
    insurance: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    booster = xgboost.train(
        {"max_depth": 2}, xgboost.DMatrix(insurance[NUMERIC], insurance["charges"]), 3
    )
    path = tmp_path / "model.json"
    booster.save_model(path)
    sample = tmp_path / "sample.csv"
    insurance[["age", "bmi", "sex", "charges"]].rename(columns={"sex": "children"}).to_csv(
        sample, index=False
    )
    code, line = _import(str(path), "--sample", str(sample), "--target", "charges", capsys=capsys)
    assert code == 2 and "takes numbers only, but column(s) children hold categories" in line


@pytest.mark.slow
@pytest.mark.e2e
def test_imported_model_is_published_listed_served_and_scored_like_a_trained_one(
    iris_csv: Path, tmp_path: Path
) -> None:
    """Import to a store (moto S3), list, serve by URI over real HTTP: the answers are
    XGBoost's own, and the web page and V2 metadata show the imported model."""
    x, y = _iris(iris_csv)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
    booster = xgboost.train(params, xgboost.DMatrix(x, y), 20)
    path = tmp_path / "iris-xgb.json"
    booster.save_model(path)
    sample = tmp_path / "iris-sample.csv"
    x.assign(label=y).to_csv(sample, index=False)

    with s3_server() as env:
        root = f"s3://{BUCKET}/registry"
        imported = modelship(
            "import", str(path), "--sample", str(sample), "--target", "label", "-q",
            "-o", root, env=env,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        uri = imported.stdout.strip().splitlines()[-1].removeprefix("published: ")
        assert uri.startswith(f"{root}/models/iris-xgb/")
        listing = modelship("models", "list", root, env=env)
        assert uri in listing.stdout and "imported-xgboost" in listing.stdout

        with running_server("--model-uri", uri, cwd=tmp_path, env=env) as server:
            records = x.to_dict(orient="records")
            answer = httpx.post(f"{server.url}/predict/batch", json=records, timeout=30).json()
            served = np.array(
                [[p["probabilities"][c] for c in ["0", "1", "2"]] for p in answer["predictions"]]
            )
            expected = booster.predict(xgboost.DMatrix(x))
            np.testing.assert_allclose(served, expected, atol=1e-5)
            assert [p["prediction"] for p in answer["predictions"]] == [
                str(i) for i in expected.argmax(1)
            ]

            score = httpx.post(
                f"{server.url}/score",
                content=sample.read_bytes(),
                headers={"content-type": "text/csv"},
                timeout=30,
            ).json()
            assert score["rows"] == 150 and score["metrics"]["accuracy"] > 0.9

            card = httpx.get(f"{server.url}/model").json()
            assert card["provenance"]["format"] == "xgboost-json"
            assert card["provenance"]["source_sha256"] == artifact.sha256_file(path)
            assert card["footprint"]["model_bytes"] == card["artifact"]["onnx_bytes"]
            page = httpx.get(f"{server.url}/").text
            assert "iris-xgb" in page and "xgboost.Booster" in page
            metadata = httpx.get(f"{server.url}/v2/models/iris-xgb").json()
            assert metadata["name"] == "iris-xgb"
            # V2 names inputs by feature (column), like a trained model's metadata.
            assert [i["name"] for i in metadata["inputs"]] == list(x.columns)
