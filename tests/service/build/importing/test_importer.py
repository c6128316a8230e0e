"""`modelship import`: every format round-trips with parity against the original library, and
every refusal is one clear line with exit code 2."""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from sklearn.ensemble import (
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelship import cli
from modelship.model import artifact
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictor
from tests.service.build.report.test_report import assert_self_contained, report_data, svg_of, texts
from tests.service.cli.test_cli import modelship
from tests.service.object_stores import BUCKET, s3_server
from tests.service.server import running_server

NUMERIC = ["age", "bmi", "children"]
CATEGORICAL = ["sex", "smoker", "region"]


def _pipeline(
    estimator: Any, categorical: list[str] = CATEGORICAL, scaled: bool = True
) -> Pipeline:
    # Scaled or not, trees decide as scikit-learn: numbers are fed and scaled in float64
    # (tests/service/build/training/test_double_inputs.py).
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


def _regions_pipeline(insurance: pd.DataFrame) -> tuple[Pipeline, pd.DataFrame]:
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    pipeline = _pipeline(forest, ["sex", "smoker"], scaled=False)
    x = insurance[[*NUMERIC, "sex", "smoker"]]
    return pipeline.fit(x, insurance["region"]), x


def _check_regions(out: Path, path: Path, pipeline: Pipeline, insurance: pd.DataFrame) -> None:
    saved_as = path.suffix.removeprefix(".")
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
    assert card.provenance.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card.provenance.trusted_pickle is (saved_as == "joblib")
    assert card.provenance.library_version == sklearn.__version__

    x = insurance[[*NUMERIC, "sex", "smoker"]]
    served = _served(out, insurance)
    assert list(served.labels) == list(pipeline.predict(x))
    np.testing.assert_allclose(served.probabilities, pipeline.predict_proba(x), atol=1e-5)


@pytest.mark.slow
def test_joblib_pipeline_with_categories_round_trips(
    insurance: pd.DataFrame, tmp_path: Path
) -> None:
    """The skops twin of this is in the CLI imports below (`imported["skops"]`)."""
    pipeline, _ = _regions_pipeline(insurance)
    path = tmp_path / "regions.joblib"
    joblib.dump(pipeline, path)
    sample = tmp_path / "sample.csv"
    insurance.drop(columns="charges").to_csv(sample, index=False)
    out = tmp_path / "artifact"
    result = modelship(
        "import", str(path), "--sample", str(sample), "--target", "region", "--trust-pickle",
        "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model regions (imported-scikit-learn, version ")
    _check_regions(out, path, pipeline, insurance)


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


@pytest.mark.parametrize(
    ("library", "task"),
    # lightgbm regression: through the CLI below (`imported["lightgbm"]`)
    [("xgboost", "regression"), ("xgboost", "classification"), ("lightgbm", "classification")],
)
def test_boosters_round_trip(
    library: str, task: str, iris_csv: Path, insurance: pd.DataFrame, tmp_path: Path
) -> None:
    path, x, original = _booster_case(library, task, iris_csv, insurance, tmp_path)
    out = _import_booster(path, x, task, iris_csv, insurance, tmp_path)
    _check_booster(out, library, task, x, original)


def _import_booster(
    path: Path, x: pd.DataFrame, task: str, iris_csv: Path, insurance: pd.DataFrame, work: Path
) -> Path:
    """The booster file imported with its rows (and their target) as the sample."""
    from modelship.build.importing.importer import ImportOptions, import_model

    sample = work / "sample.csv"
    x.assign(y=_iris(iris_csv)[1] if task == "classification" else insurance["charges"]).to_csv(
        sample, index=False
    )
    out = work / "artifact"
    import_model(ImportOptions(model=path, sample=sample, output=out, target="y"), lambda _: None)
    return out


def _check_booster(
    out: Path, library: str, task: str, x: pd.DataFrame, original: Callable[[pd.DataFrame], Any]
) -> None:
    card = artifact.load(out).card
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
    from modelship.build.importing.importer import ImportOptions, import_model

    card = import_model(ImportOptions(model=path, sample=sample, output=out), lambda _: None)
    # Iris's column names ("sepal length (cm)") become safe input names.
    assert [f.input_name for f in card.features] == [re.sub(r"\W", "_", c) for c in x.columns]
    served = _served(out, x)
    np.testing.assert_allclose(served.probabilities, model.predict_proba(x.to_numpy()), atol=1e-5)
    assert list(served.labels) == [str(i) for i in model.predict(x.to_numpy())]


# ------------------------------------------ through the CLI, with the report, over HTTP

CLASSIFICATION_PLOTS = {"confusion-matrix", "per-class", "calibration", "importance"}


@dataclass(frozen=True)
class CliCase:
    source: Path
    sample: Path
    extra: tuple[str, ...]
    plots: set[str]  # what the report must draw, and nothing else
    key: set[str]  # the plots the web page shows beside the form
    check: Callable[[Path], None]  # parity of the served artifact with the original model


def _cli_cases(insurance: pd.DataFrame, iris_csv: Path, work: Path) -> dict[str, CliCase]:
    cases: dict[str, CliCase] = {}
    every_task = {"distributions", "parity"}

    folder = work / "skops"
    folder.mkdir()
    pipeline, _ = _regions_pipeline(insurance)
    regions = folder / "regions.skops"
    skops.io.dump(pipeline, regions)
    cases["skops"] = CliCase(
        regions,
        _without(insurance, "charges", folder),
        # A forest in skops holds types skops asks the user to trust by name.
        ("--target", "region", "--trust", "sklearn.tree._tree.Tree"),
        # A scikit-learn pipeline: its forest's covers are recorded, so its explanations too.
        CLASSIFICATION_PLOTS | every_task | {"contributions"},
        {"confusion-matrix", "importance"},
        lambda out: _check_regions(out, regions, pipeline, insurance),
    )

    folder = work / "lightgbm"
    folder.mkdir()
    path, x, original = _booster_case("lightgbm", "regression", iris_csv, insurance, folder)
    x.assign(y=insurance["charges"]).to_csv(folder / "sample.csv", index=False)
    cases["lightgbm"] = CliCase(
        path,
        folder / "sample.csv",
        ("--target", "y"),
        # Bare trees: explained by interventional TreeSHAP against the sample, so plotted too.
        {"predicted-vs-actual", "residuals", "importance", "contributions"} | every_task,
        {"predicted-vs-actual", "importance"},
        lambda out: _check_booster(out, "lightgbm", "regression", x, original),
    )

    folder = work / "onnx"
    folder.mkdir()
    onnx_file, tool_pipeline = _onnx_with_own_names(insurance, folder)
    mapping = ",".join(f"{c}=in_{c}" for c in NUMERIC + SMOKER_TEXT)

    def check_onnx(out: Path) -> None:
        card = artifact.load(out).card
        assert card.classes == ["no", "yes"]
        assert card.feature("age").input_name == "in_age"
        assert card.provenance is not None and card.provenance.library == "skl2onnx"
        renamed = insurance[NUMERIC + SMOKER_TEXT].rename(columns=lambda c: f"in_{c}")
        served = _served(out, insurance)
        assert list(served.labels) == list(tool_pipeline.predict(renamed))
        np.testing.assert_allclose(
            served.probabilities, tool_pipeline.predict_proba(renamed), atol=1e-5
        )

    cases["onnx"] = CliCase(
        onnx_file,
        _without(insurance, "charges", folder),
        ("--target", "smoker", "--input-map", mapping),
        CLASSIFICATION_PLOTS | {"roc-pr"} | every_task,
        {"confusion-matrix", "importance"},
        check_onnx,
    )

    folder = work / "no-target"
    folder.mkdir()
    features = insurance[NUMERIC + CATEGORICAL]
    ridge = _pipeline(Ridge()).fit(features, insurance["charges"])
    skops.io.dump(ridge, folder / "charges.skops")
    features.to_csv(folder / "features.csv", index=False)

    def check_untargeted(out: Path) -> None:
        card = artifact.load(out).card
        assert card.task == "regression"
        assert card.metrics == {}  # nothing made up
        assert card.target == "target"
        np.testing.assert_allclose(
            _served(out, features).values, ridge.predict(features), rtol=1e-4
        )

    cases["no-target"] = CliCase(
        folder / "charges.skops",
        folder / "features.csv",
        (),
        every_task | {"contributions"},  # needs no target: the sample's means are the base
        set(),
        check_untargeted,
    )
    return cases


def _start_import(case: CliCase, out: Path) -> subprocess.Popen[str]:
    command = ["import", str(case.source), "--sample", str(case.sample), *case.extra]
    return subprocess.Popen(
        [sys.executable, "-m", "modelship", *command, "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def imported(
    insurance: pd.DataFrame, iris_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[CliCase, Path]]:
    """Each case imported by `modelship import` as users run it, all at once (each is mostly one
    core's work: reading, parity, the footprint process, the plots)."""
    work = tmp_path_factory.mktemp("cli-imports")
    cases = _cli_cases(insurance, iris_csv, work)
    running = {name: _start_import(case, work / name / "artifact") for name, case in cases.items()}
    results = {name: process.communicate(timeout=300) for name, process in running.items()}
    for name, process in running.items():
        out, err = results[name]
        assert process.returncode == 0, f"{name}: {err}"
        page = work / name / "artifact" / "model-report.html"
        assert "The report took" in err and str(page) in err, name
        assert out.strip().endswith(f"artifact: {work / name / 'artifact'}"), name
    return {name: (case, work / name / "artifact") for name, case in cases.items()}


@pytest.mark.slow
def test_cli_imports_match_the_original_and_carry_the_report(
    imported: dict[str, tuple[CliCase, Path]],
) -> None:
    """What `train` writes, `import` writes: parity, then the report, checked by content."""
    for name, (case, out) in imported.items():
        case.check(out)
        card = artifact.load(out).card  # checks every report file's SHA-256 against the card
        assert card.report is not None, name
        assert {p.name for p in card.report.plots} == case.plots, name
        assert {p.name for p in card.report.plots if p.key} == case.key, name
        page = (out / "model-report.html").read_text()
        assert_self_contained(page)
        assert f"<h1>Import report: {card.name}</h1>" in page
        assert card.provenance is not None and card.provenance.source_file in page
        assert "An imported model" in " ".join(card.report.notes)
        data = report_data(out)["plots"]
        rows = card.training_data.rows
        assert data["parity"]["rows"] == rows == card.parity.rows, name
        library = card.provenance.library
        assert f"Export parity: ONNX vs {library} on the import sample" in texts(
            svg_of(out, "parity")
        )
        # every feature's distribution over every sample row (what drift is compared with)
        for feature in card.features:
            shown = data["distributions"]["columns"][feature.name]
            counted = sum(shown["counts"]) + shown.get("other_count", 0) + shown.get("missing", 0)
            assert shown["rows"] == counted == rows, (name, feature.name)

    out = imported["skops"][1]
    data = report_data(out)["plots"]
    assert sum(map(sum, data["confusion-matrix"]["counts"])) == 1338
    assert "Confusion matrix: 1,338 sample rows (import sample)" in texts(
        svg_of(out, "confusion-matrix")
    )
    card = artifact.load(out).card
    assert data["per-class"]["macro_f1"] == pytest.approx(card.metrics["test"]["macro_f1"])

    out = imported["lightgbm"][1]
    data = report_data(out)["plots"]
    card = artifact.load(out).card
    assert data["predicted-vs-actual"]["metrics"]["r2"] == pytest.approx(card.metrics["test"]["r2"])
    assert {f["feature"] for f in data["importance"]["features"]} == set(NUMERIC)
    assert data["distributions"]["columns"]["y"]["rows"] == 1338  # the target's panel

    roc = report_data(imported["onnx"][1])["plots"]["roc-pr"]["roc"]
    assert 0.5 < roc["auc"] <= 1.0

    out = imported["no-target"][1]
    card = artifact.load(out).card
    assert card.report is not None
    notes = " ".join(card.report.notes)
    assert "The sample has no target column (--target)" in notes
    assert "predicted vs actual, residuals" in notes and "could not be evaluated" in notes
    page = (out / "model-report.html").read_text()
    assert "could not be evaluated" in page and "the sample has no target" in page


MODEL_LIBRARIES = ("sklearn", "xgboost", "lightgbm", "skl2onnx", "onnxmltools", "skops")


def _libraries_loaded(pid: int) -> set[str]:
    """The model libraries whose compiled code is mapped into a process or its children
    (scikit-learn, XGBoost and LightGBM cannot be imported without it)."""
    pids, found = [pid], set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    for each in pids:
        maps = Path(f"/proc/{each}/maps").read_text()
        found |= {name for name in MODEL_LIBRARIES if f"/{name}/" in maps}
    return found


@pytest.mark.slow
def test_cli_imports_are_served_with_their_report_over_http(
    imported: dict[str, tuple[CliCase, Path]], tmp_path: Path
) -> None:
    names = list(imported)
    with (
        contextlib.ExitStack() as stack,
        ThreadPoolExecutor(len(names)) as pool,  # the servers start at the same time
    ):
        servers = list(
            pool.map(
                lambda name: stack.enter_context(
                    running_server("--artifact", str(imported[name][1]), cwd=tmp_path)
                ),
                names,
            )
        )
        for name, server in zip(names, servers, strict=True):
            case, out = imported[name]
            card = httpx.get(f"{server.url}/model", timeout=10).json()
            assert card["report"] == json.loads((out / artifact.CARD_FILE).read_text())["report"]
            page = httpx.get(f"{server.url}/model/report", timeout=10)
            assert page.status_code == 200
            assert page.content == (out / "model-report.html").read_bytes()
            for plot in case.plots:
                svg = httpx.get(f"{server.url}/model/report/{plot}.svg", timeout=10)
                assert svg.status_code == 200, (name, plot)
                assert svg.content == (out / "report" / f"{plot}.svg").read_bytes()
            home = httpx.get(f"{server.url}/", timeout=10).text
            link = '<a id="report-link" href="/model/report" target="_blank">Import report</a>'
            assert link in home, name
            for plot in case.key:
                assert f'src="/model/report/{plot}.svg"' in home, (name, plot)
            if case.key:
                assert "On the import sample" in home
            else:  # no target: no quality to show, and the page says so
                assert "key-plots" not in home
                assert "not evaluated (no target in the sample)" in home
                missing = httpx.get(f"{server.url}/model/report/importance.svg", timeout=10)
                assert missing.status_code == 404
            # The server ran the ONNX graph only: none of the model's own libraries is loaded.
            assert _libraries_loaded(server.process.pid) == set(), name


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
    # Trusted, it loads; held to a tolerance its float32 trees cannot meet (their leaves add up
    # in float32), parity fails loudly, naming the worst row.
    out = tmp_path / "trusted"
    code, line = _import(
        str(boosted), *sample, "--trust", untrusted, "--parity-tolerance", "1e-12",
        "-o", str(out), capsys=capsys,
    )  # fmt: skip
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
            assert (
                card["provenance"]["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            )
            assert card["footprint"]["model_bytes"] == card["artifact"]["onnx_bytes"]
            page = httpx.get(f"{server.url}/").text
            assert "iris-xgb" in page and "xgboost.Booster" in page
            metadata = httpx.get(f"{server.url}/v2/models/iris-xgb").json()
            assert metadata["name"] == "iris-xgb"
            # V2 names inputs by feature (column), like a trained model's metadata.
            assert [i["name"] for i in metadata["inputs"]] == list(x.columns)


def test_scaled_forest_decides_every_split_as_scikit_learn(
    insurance: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """StandardScaler + a forest: the export scales in float64 as scikit-learn does.

    Scaled in float32 (skl2onnx's converter), scaled values crossed split thresholds and this
    import was refused at 1,402 (a tenth of the target's spread). The numbers are float32
    values (bmi to a quarter), so the only difference left would be the export's own.
    """
    frame = insurance.assign(bmi=(insurance["bmi"] * 4).round() / 4)
    x = frame.drop(columns="charges")
    forest = RandomForestRegressor(n_estimators=30, max_depth=8, random_state=0)
    pipeline = _pipeline(forest).fit(x, frame["charges"])
    path = tmp_path / "scaled.joblib"
    joblib.dump(pipeline, path)
    sample = tmp_path / "sample.csv"
    frame.to_csv(sample, index=False)
    out = tmp_path / "artifact"
    code, line = _import(
        str(path), "--sample", str(sample), "--target", "charges", "--trust-pickle",
        "-o", str(out), capsys=capsys,
    )  # fmt: skip
    assert code == 0, line
    card = artifact.load(out).card
    assert card.parity.tolerance == 1e-4  # the default, not raised
    assert card.parity.max_abs_diff < 0.05  # float32 sums of the leaves, no flipped split
    served = _served(out, frame)
    np.testing.assert_allclose(served.values, pipeline.predict(x), rtol=1e-5)


@pytest.mark.parametrize(
    ("library", "task"), [("xgboost", "classification"), ("lightgbm", "regression")]
)
def test_boosters_without_covers_are_explained_by_interventional_treeshap(
    library: str, task: str, iris_csv: Path, insurance: pd.DataFrame, tmp_path: Path
) -> None:
    """A native booster file imports as bare trees: interventional TreeSHAP against rows of the
    sample, equal to shap's on the original model with that background; answers say so."""
    import io

    import shap

    path, x, _ = _booster_case(library, task, iris_csv, insurance, tmp_path)
    loaded = artifact.load(_import_booster(path, x, task, iris_csv, insurance, tmp_path))
    assert loaded.card.explanation is not None
    assert loaded.card.explanation.method == "interventional TreeSHAP"
    predictor = Predictor(loaded)
    rows = x.head(60)
    batch = RecordsCodec(predictor.schema).decode(rows.to_dict(orient="records"))
    ours = predictor.explain(batch)
    assert predictor.explanation_row(ours, 0)["method"] == "interventional TreeSHAP"
    assert loaded.explanation is not None
    background = np.load(io.BytesIO(loaded.explanation))["background"]
    model = (
        xgboost.Booster(model_file=str(path))
        if library == "xgboost"
        else lightgbm.Booster(model_file=str(path))
    )
    reference = shap.TreeExplainer(model, background, feature_perturbation="interventional")
    theirs = np.asarray(reference.shap_values(rows.to_numpy(np.float32).astype(np.float64)))
    if theirs.ndim == 3 and theirs.shape[0] != len(rows):  # one [rows, features] per class
        theirs = theirs.transpose(1, 2, 0)
    theirs = theirs.reshape(len(rows), x.shape[1], -1)
    scale = np.abs(theirs).max()
    assert np.abs(ours.contributions - theirs).max() <= 1e-6 * scale
    np.testing.assert_allclose(ours.base, np.atleast_1d(reference.expected_value), rtol=1e-6)
    # base + contributions: the trees' raw sum (margins), reproduced for every row sent.
    margins = np.asarray(
        model.predict(xgboost.DMatrix(rows), output_margin=True)
        if library == "xgboost"
        else model.predict(rows, raw_score=True)
    ).reshape(len(rows), -1)
    np.testing.assert_allclose(ours.base + ours.contributions.sum(axis=1), margins, rtol=1e-4)


@pytest.mark.parametrize(
    "model",
    ["forest fitted on a frame", "forest fitted on an array", "scaler then ridge"],
)
def test_models_that_take_one_matrix_import_and_answer_as_scikit_learn(
    model: str, insurance: pd.DataFrame, tmp_path: Path
) -> None:
    """A bare estimator, or a pipeline that does not start with a ColumnTransformer, takes the
    columns as one matrix: the export joins the served inputs into it (the converter refused
    it: "at most 1 input(s) is(are) supported but we got 3")."""
    x, y = insurance[NUMERIC], insurance["charges"]
    fitted: Any = {
        "forest fitted on a frame": lambda: RandomForestRegressor(
            n_estimators=10, max_depth=5, random_state=0
        ).fit(x, y),
        "forest fitted on an array": lambda: RandomForestRegressor(
            n_estimators=10, max_depth=5, random_state=0
        ).fit(x.to_numpy(), y),
        "scaler then ridge": lambda: make_pipeline(StandardScaler(), Ridge()).fit(x, y),
    }[model]()
    path, sample = tmp_path / "model.joblib", tmp_path / "sample.csv"
    joblib.dump(fitted, path)
    insurance[[*NUMERIC, "charges"]].to_csv(sample, index=False)
    out = tmp_path / "artifact"
    result = modelship(
        "import",
        str(path),
        "--trust-pickle",
        "--sample",
        str(sample),
        "--target",
        "charges",
        "--no-capacity",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    card = artifact.load(out).card
    assert [f.name for f in card.features] == NUMERIC
    expected = fitted.predict(x if model != "forest fitted on an array" else x.to_numpy())
    np.testing.assert_allclose(_served(out, insurance).values, expected, rtol=1e-5)
