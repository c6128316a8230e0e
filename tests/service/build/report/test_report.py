"""The training report: each task's plots checked by what they show, the page self-contained,
served over HTTP, written by the CLI, and never needing matplotlib to serve."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import string
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelship.build.report import Evaluation, build_report
from modelship.build.training.options import TrainOptions
from modelship.build.training.train import train
from modelship.contracts.card import ModelCard
from modelship.model import artifact
from tests.service.cli.test_cli import assert_one_line_error, modelship
from tests.service.conftest import make_client

SVG = "{http://www.w3.org/2000/svg}"


def _quiet(_: str) -> None:
    return None


@pytest.fixture(scope="module")
def binary_artifact(tmp_path_factory: pytest.TempPathFactory, insurance_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("models") / "smoker"
    train(TrainOptions(data=insurance_csv, target="smoker", output=out, model="logistic"), _quiet)
    return out


@pytest.fixture(scope="module")
def letters_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """26 classes (A to Z), 2,600 rows, and a text column with 300 categories."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 26, 2_600)
    centers = rng.normal(0, 2.5, (26, 6))
    frame = pd.DataFrame(
        (centers[labels] + rng.normal(0, 1.2, (2_600, 6))).round(3),
        columns=[f"x{i}" for i in range(6)],
    )
    frame["shop"] = [f"shop-{i:03d}" for i in rng.integers(0, 300, 2_600)]
    frame["letter"] = [string.ascii_uppercase[i] for i in labels]
    data = tmp_path_factory.mktemp("data") / "letters.csv"
    frame.to_csv(data, index=False)
    out = tmp_path_factory.mktemp("models") / "letters"
    train(TrainOptions(data=data, target="letter", output=out, model="logistic"), _quiet)
    return out


def report_data(directory: Path) -> dict[str, Any]:
    page = (directory / "model-report.html").read_text()
    start = page.index('<script id="report-data" type="application/json">')
    block = page[page.index(">", start) + 1 : page.index("</script>", start)]
    return json.loads(block.replace("<\\/", "</"))  # type: ignore[no-any-return]


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own plots, just written


def svg_of(directory: Path, name: str) -> ET.Element:
    return parse_svg((directory / "report" / f"{name}.svg").read_text())


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


class References(HTMLParser):
    """Every URL-bearing attribute and every <link>/<script src> on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "data", "poster") and value:
                self.urls.append(value)
        if tag == "link" or (tag == "script" and dict(attrs).get("src")):
            self.links.append(tag)


def assert_self_contained(page: str) -> None:
    parser = References()
    parser.feed(page)
    external = [u for u in parser.urls if u.startswith(("http:", "https:", "//", "file:"))]
    assert external == []
    assert parser.links == []
    assert all(u.startswith("#") for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", page))
    assert "@import" not in page
    assert all(u.startswith(("#", "data:")) for u in parser.urls), parser.urls


def test_regression_report(regression_artifact: Path) -> None:
    card = artifact.load(regression_artifact).card
    assert card.report is not None
    names = [p.name for p in card.report.plots]
    assert names == [
        "predicted-vs-actual", "residuals", "importance", "contributions", "parity",
        "distributions",
    ]  # fmt: skip
    for name, sha in card.report.files.items():
        assert hashlib.sha256((regression_artifact / name).read_bytes()).hexdigest() == sha
    data = report_data(regression_artifact)
    assert data["version"] == card.version
    scatter = data["plots"]["predicted-vs-actual"]
    assert scatter["rows"] == scatter["shown"] == card.training_data.test_rows
    assert scatter["metrics"]["r2"] == pytest.approx(card.metrics["test"]["r2"], rel=1e-6)
    assert scatter["note"] is None  # 268 rows: nothing sampled
    svg = svg_of(regression_artifact, "predicted-vs-actual")
    (group,) = [g for g in svg.iter(f"{SVG}g") if g.get("id") == "points"]
    points = list(group.iter(f"{SVG}use"))
    assert len(points) == card.training_data.test_rows
    words = texts(svg)
    assert "Predicted vs actual charges (held-out test split)" in words
    assert f"insurance-charges · version {card.version}" in words
    assert "actual charges" in words and "predicted charges" in words

    importance = data["plots"]["importance"]
    assert importance["metric"] == "r2"
    assert {f["feature"] for f in importance["features"]} == {f.name for f in card.features}
    assert importance["features"][0]["feature"] == "smoker"  # what drives insurance charges
    assert importance["baseline"] == pytest.approx(card.metrics["test"]["r2"], rel=1e-6)
    # Mean |contribution| per column, beside the permutation importance of the same column.
    contributions = data["plots"]["contributions"]
    assert contributions["method"] == "path-dependent TreeSHAP"
    ranked = contributions["features"]
    assert ranked[0]["feature"] == "smoker"
    means = [f["mean_abs"] for f in ranked]
    assert means == sorted(means, reverse=True)
    by_name = {f["feature"]: f["mean"] for f in importance["features"]}
    assert all(f["importance"] == by_name[f["feature"]] for f in ranked)

    columns = data["plots"]["distributions"]["columns"]
    assert next(iter(columns)) == "charges"  # the target first
    assert sum(columns["age"]["counts"]) == card.training_data.train_rows
    assert columns["region"]["categories"] == ["southeast", "northeast", "southwest", "northwest"]
    assert sum(columns["region"]["counts"]) == card.training_data.train_rows

    parity = data["plots"]["parity"]
    assert parity["rows"] == card.parity.rows
    assert parity["max_diff"] <= card.parity.tolerance
    assert_self_contained((regression_artifact / "model-report.html").read_text())


def test_multiclass_report(classification_artifact: Path) -> None:
    card = artifact.load(classification_artifact).card
    assert card.report is not None
    assert [p.name for p in card.report.plots] == [
        "confusion-matrix", "per-class", "calibration", "importance", "contributions", "parity",
        "distributions",
    ]  # fmt: skip
    data = report_data(classification_artifact)
    matrix = data["plots"]["confusion-matrix"]
    counts = np.array(matrix["counts"])
    assert matrix["labels"] == card.classes
    assert counts.sum() == card.training_data.test_rows
    assert np.trace(counts) / counts.sum() == pytest.approx(card.metrics["test"]["accuracy"])
    # The SVG shows the same counts, one text per non-empty cell.
    svg = svg_of(classification_artifact, "confusion-matrix")
    cells = [g for g in svg.iter(f"{SVG}g") if (g.get("id") or "").startswith("cell-")]
    assert sum(int("".join(c.itertext())) for c in cells) == card.training_data.test_rows
    assert data["plots"]["per-class"]["per_class"] == card.metrics["test"]["per_class"]
    calibration = data["plots"]["calibration"]
    assert sum(calibration["count"]) == card.training_data.test_rows
    assert calibration["label"] == "the predicted class's probability"
    assert "roc-pr" not in data["plots"]  # only for two classes
    assert data["plots"]["importance"]["metric"] == "macro_f1"
    assert data["plots"]["contributions"]["method"] == "linear"
    assert_self_contained((classification_artifact / "model-report.html").read_text())


def test_binary_report_has_roc_and_pr(binary_artifact: Path) -> None:
    card = artifact.load(binary_artifact).card
    data = report_data(binary_artifact)
    curves = data["plots"]["roc-pr"]
    assert curves["roc"]["auc"] > 0.9  # smoking shows in the charges
    fpr = np.array(curves["roc"]["fpr"])
    assert fpr[0] == 0 and fpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert curves["pr"]["prevalence"] == pytest.approx(
        card.metrics["test"]["per_class"]["yes"]["support"] / card.training_data.test_rows
    )
    assert data["plots"]["calibration"]["label"] == "P(yes)"
    words = texts(svg_of(binary_artifact, "roc-pr"))
    assert f"AUC {curves['roc']['auc']:.3f}" in words
    assert "Positive class 'yes', held-out test split" in words


def test_26_classes_and_many_categories_stay_readable(letters_artifact: Path) -> None:
    card = artifact.load(letters_artifact).card
    data = report_data(letters_artifact)
    matrix = data["plots"]["confusion-matrix"]
    assert matrix["labels"] == list(string.ascii_uppercase)
    assert np.array(matrix["counts"]).sum() == card.training_data.test_rows
    svg = svg_of(letters_artifact, "confusion-matrix")
    words = texts(svg)
    assert all(letter in words for letter in string.ascii_uppercase)  # every tick is labelled
    cells = [g for g in svg.iter(f"{SVG}g") if (g.get("id") or "").startswith("cell-")]
    assert sum(int("".join(c.itertext())) for c in cells) == card.training_data.test_rows
    shop = data["plots"]["distributions"]["columns"]["shop"]
    assert len(shop["categories"]) == 12 and shop["other_categories"] == 300 - 12
    assert sum(shop["counts"]) + shop["other_count"] == card.training_data.train_rows
    target = data["plots"]["distributions"]["columns"]["letter"]
    assert len(target["categories"]) == 26  # every class of the target is drawn
    assert f"{300 - 12} others" in texts(svg_of(letters_artifact, "distributions"))


def _evaluation(directory: Path, **changes: Any) -> tuple[ModelCard, Evaluation]:
    loaded = artifact.load(directory)
    frame = pd.DataFrame(loaded.card.examples)
    return loaded.card, Evaluation(onnx_bytes=loaded.onnx_bytes, training=frame, **changes)


def test_leaderboard_shows_footprint_columns_when_rows_have_them(
    regression_artifact: Path,
) -> None:
    card, evaluation = _evaluation(regression_artifact)
    rows = [
        {"model": "gradient_boosting", "rank": 1, "r2": 0.85, "r2_std": 0.02, "seconds": 3.0,
         "model_bytes": 2_000_000, "latency_row_ms": 0.05},
        {"model": "ridge", "rank": 2, "r2": 0.74, "r2_std": 0.03, "seconds": 0.2},
    ]  # fmt: skip
    report = build_report(card.model_copy(update={"leaderboard": rows}), evaluation)
    leaderboard = report.plot("leaderboard")
    assert leaderboard.data["chosen"] == "gradient_boosting"
    assert [r["model"] for r in leaderboard.data["rows"]] == ["gradient_boosting", "ridge"]
    words = texts(parse_svg(leaderboard.svg))
    assert {"r2 (mean ± sd over folds)", "CV time (s)", "model size (MB)"} <= set(words)
    assert "latency, 1 row (ms)" in words
    assert "serving memory (MB)" not in words  # no row has it
    assert " n/a" in words  # ridge has no size
    assert " 2" in words  # 2,000,000 bytes shown as 2 MB


def test_without_held_out_rows_or_target_only_what_can_be_shown(
    classification_artifact: Path,
) -> None:
    """An import with a sample but no target: the data, and notes saying what is missing."""
    card, evaluation = _evaluation(classification_artifact)
    report = build_report(card, evaluation)
    assert [p.name for p in report.plots] == ["distributions"]
    assert any("No held-out rows" in note for note in report.notes)
    assert "Not shown" in report.html()


@pytest.mark.slow
def test_a_million_training_rows_make_a_small_report(
    regression_artifact: Path, tmp_path: Path
) -> None:
    from modelship.build.report import write_report

    loaded = artifact.load(regression_artifact)
    card = loaded.card
    rng = np.random.default_rng(0)
    big = 1_000_000
    training = pd.DataFrame(
        {
            f.name: rng.uniform(f.numeric.min, f.numeric.max, big)
            if f.numeric is not None
            else rng.choice(f.categories or [], big)
            for f in card.features
        }
    )
    held_out = training.iloc[:200_000].reset_index(drop=True)
    truth = pd.Series(rng.normal(13_000, 12_000, len(held_out)))
    report = build_report(
        card,
        Evaluation(
            onnx_bytes=loaded.onnx_bytes,
            training=training,
            training_target=pd.Series(rng.normal(13_000, 12_000, big)),
            held_out=held_out,
            truth=truth,
        ),
    )
    out = tmp_path / "big"
    write_report(report, out)
    size = (out / "model-report.html").stat().st_size
    assert size < 3_000_000, size
    scatter = report.plot("predicted-vs-actual")
    assert scatter.data["note"] == "a random sample of 2,000 of 200,000 test rows"
    assert "Shows a random sample of 2,000 of 200,000 test rows." in texts(parse_svg(scatter.svg))
    assert report.plot("importance").data["rows"] == 3_000
    assert sum(report.plot("distributions").data["columns"]["age"]["counts"]) == big


# --- where people see it --------------------------------------------------------------------
def _without_report(source: Path, target: Path) -> Path:
    """An artifact as modelship made them before reports (and explanations) existed."""
    target.mkdir()
    shutil.copy(source / "model.onnx", target)
    card = json.loads((source / artifact.CARD_FILE).read_text())
    del card["report"], card["explanation"]
    (target / artifact.CARD_FILE).write_text(json.dumps(card))
    return target


def test_served_over_http_and_404_for_older_artifacts(
    classification_artifact: Path, tmp_path: Path
) -> None:
    with make_client(classification_artifact, api_key="secret") as client:
        page = client.get("/model/report")  # open, like the page: a link cannot send a key
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.content == (classification_artifact / "model-report.html").read_bytes()
        plot = client.get("/model/report/confusion-matrix.svg")
        assert plot.status_code == 200
        assert plot.headers["content-type"] == "image/svg+xml"
        missing = client.get("/model/report/nothing.svg")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found"
        assert "confusion-matrix.svg" in missing.json()["error"]["message"]
        assert client.get("/model").status_code == 401  # the rest keeps needing the key
        home = client.get("/").text
        assert 'href="/model/report"' in home
        assert 'src="/model/report/confusion-matrix.svg"' in home
        assert 'src="/model/report/importance.svg"' in home

    old = _without_report(classification_artifact, tmp_path / "old")
    with make_client(old) as client:
        answer = client.get("/model/report")
        assert answer.status_code == 404
        body = answer.json()["error"]
        assert body["status"] == 404
        assert "has no training report" in body["message"]
        assert "/model/report" not in client.get("/").text


def test_serving_the_report_imports_no_plotting_or_training_library(
    regression_artifact: Path,
) -> None:
    probe = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from modelship.model import artifact\n"
        "from modelship.serving.compose import build_serving\n"
        "from modelship.transport.http.app import create_app\n"
        "from modelship.model.predictor import Predictor\n"
        "from modelship.contracts.settings import Settings\n"
        f"predictor = Predictor(artifact.load(artifact.Path({str(regression_artifact)!r})))\n"
        "with TestClient(create_app(build_serving(Settings(), predictor))) as client:\n"
        "    assert client.get('/model/report').status_code == 200\n"
        "    assert client.get('/model/report/importance.svg').status_code == 200\n"
        "    assert client.get('/').status_code == 200\n"
        "print(sorted(m for m in ('matplotlib', 'sklearn', 'pandas', 'skl2onnx')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_writes_the_report_and_explains_a_missing_one(
    regression_artifact: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    written = modelship("report", str(regression_artifact), "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == str(out)
    assert out.read_bytes() == (regression_artifact / "model-report.html").read_bytes()

    shown = modelship("report", str(regression_artifact))
    assert shown.stdout.strip() == str(regression_artifact / "model-report.html")

    old = _without_report(regression_artifact, tmp_path / "old")
    assert_one_line_error(modelship("report", str(old)), 2, "has no training report")
    assert_one_line_error(modelship("report", str(tmp_path / "nothing")), 2, "does not exist")


def test_cli_reads_a_version_from_a_model_store(regression_artifact: Path, tmp_path: Path) -> None:
    from modelship.model import store

    uri = store.publish(regression_artifact, f"file://{tmp_path / 'store'}")
    version = Path(uri)
    assert (version / "model-report.html").is_file()
    assert (version / "report" / "importance.svg").is_file()
    out = tmp_path / "from-store.html"
    result = modelship("report", uri, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (regression_artifact / "model-report.html").read_bytes()


@pytest.mark.parametrize(("features", "rows"), [(1, 3_000), (10, 3_000), (16, 1_875), (100, 300)])
def test_permutation_importance_predicts_fewer_rows_on_wide_tables(
    features: int, rows: int
) -> None:
    """Its cost is features x repeats x rows: a wide table must not make the report the run."""
    from modelship.build.report import numbers

    assert numbers.importance_rows(features) == rows
    assert features * numbers.IMPORTANCE_REPEATS * rows <= max(
        numbers.IMPORTANCE_ROW_BUDGET, features * numbers.IMPORTANCE_REPEATS * 300
    )


@pytest.mark.parametrize(("row_ms", "rows"), [(0.001, 1_875), (0.136, 367), (5.0, 300)])
def test_permutation_importance_predicts_fewer_rows_for_a_slow_model(
    row_ms: float, rows: int
) -> None:
    """16 columns: a fast model keeps the row budget; a slow one (26-class LightGBM: 0.136 ms a
    row) spends at most IMPORTANCE_SECONDS predicting, never fewer than 300 rows."""
    from modelship.build.report import numbers

    assert numbers.importance_rows(16, row_ms) == rows


def test_the_summary_says_what_was_searched_per_family(regression_artifact: Path) -> None:
    """Why the winner won is only clear beside what it was up against and what was left."""
    from modelship.contracts.card import SearchInfo

    card, evaluation = _evaluation(regression_artifact)
    families = [
        {"model": "lightgbm", "screen_score": 0.84, "configs": 3, "of_configs": 5,
         "best_config": "num_leaves=7, 24 rounds", "best_score": 0.8535, "seconds": 3.7,
         "untried": "2 configuration(s) not started: about 9 s each, past the time budget"},
        {"model": "mlp", "screen_score": None, "configs": 0, "of_configs": 3,
         "best_config": None, "best_score": None, "seconds": 0.0,
         "untried": "not screened: the screen's share of the time budget was spent"},
    ]  # fmt: skip
    search = SearchInfo(
        time_budget_seconds=30, seconds=29.5, folds=5, parallel_tasks=2, max_model_mb=40,
        max_serving_mb=320, selection="lightgbm has the best", families=families,
    )  # fmt: skip
    page = build_report(card.model_copy(update={"search": search}), evaluation).html()
    assert "<h2>Search (29.5 s of 30 s)</h2>" in page
    assert "3/5 configurations, best 0.8535: num_leaves=7, 24 rounds (3.7 s)" in page
    assert "0/3 configurations, not screened: the screen&#x27;s share of the time budget" in page
