"""The `modelship` command, run as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from modelship.model.predictor import Predictor


def modelship(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelship", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("modelship: error: ")
    assert words in lines[-1]


def test_train_info_predict_round_trip(iris_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "iris-model"
    trained = modelship(
        "train", "--data", str(iris_csv), "--target", "species", "--model", "lda", "-o", str(out)
    )
    assert trained.returncode == 0, trained.stderr
    assert "Task: classification" in trained.stderr
    assert trained.stdout.startswith("model iris-species (lda, version ")
    assert f"artifact: {out}" in trained.stdout

    info = modelship("info", str(out))
    assert info.returncode == 0
    assert "classes: setosa, versicolor, virginica" in info.stdout
    card = json.loads(modelship("info", str(out), "--json").stdout)
    assert card["target"] == "species"

    predicted = tmp_path / "predicted.csv"
    result = modelship("predict", str(out), str(iris_csv), "-o", str(predicted))
    assert result.returncode == 0, result.stderr
    assert "predicted 150 rows" in result.stderr
    frame = pd.read_csv(predicted)
    assert list(frame.columns[-4:]) == [
        "predicted_species",
        "probability_setosa",
        "probability_versicolor",
        "probability_virginica",
    ]
    assert (frame["predicted_species"] == frame["species"]).mean() > 0.95
    assert (
        frame[["probability_setosa", "probability_versicolor", "probability_virginica"]]
        .sum(axis=1)
        .round(4)
        .eq(1)
        .all()
    )


def test_predict_to_stdout(regression_artifact: Path, insurance_csv: Path) -> None:
    result = modelship("predict", str(regression_artifact), str(insurance_csv))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "age,sex,bmi,children,smoker,region,charges,predicted_charges"
    assert len(lines) == 1339


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (
            ["train", "--data", "missing.csv", "--target", "x"],
            2,
            "training data missing.csv does not exist",
        ),
        (["train", "--data", "{iris}"], 2, "--target is required with --data"),
        (
            ["train", "--data", "{iris}", "--target", "colour"],
            2,
            "target column 'colour' is not in iris.csv",
        ),
        (["train", "--poly", "9"], 2, "--poly must be 2, 3 or 4, got '9'"),
        (
            ["train", "--model", "catboost"],
            2,
            "--model must be auto or one model of the menu (regression: ridge, ",
        ),
        (["info", "nowhere"], 2, "no model artifact at nowhere"),
        (["predict", "{model}", "missing.csv"], 2, "input CSV missing.csv does not exist"),
        (["serve", "--artifact", "nowhere"], 2, "no model artifact at nowhere"),
        (["quality", "file:///nowhere", "--labels", "gone.csv"], 2, "labels file gone.csv does"),
        (["quality", "file:///nowhere", "--labels", "{labels}"], 2, "no captures under /nowhere"),
        (["quality", "ftp://x", "--labels", "{labels}"], 2, "'ftp://x' is not supported"),
        (["feedback", "http://127.0.0.1:9", "{labels}"], 2, "cannot reach http://127.0.0.1:9"),
        (["feedback", "http://127.0.0.1:9", "{iris}"], 2, "field 'id': the header has no such"),
    ],
)
def test_errors_are_one_line(
    args: list[str],
    code: int,
    words: str,
    iris_csv: Path,
    regression_artifact: Path,
    tmp_path: Path,
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nr#0,1.5\n")
    filled = [
        a.replace("{iris}", str(iris_csv))
        .replace("{model}", str(regression_artifact))
        .replace("{labels}", str(labels))
        for a in args
    ]
    assert_one_line_error(modelship(*filled, cwd=tmp_path), code, words)


def test_bad_train_flags_are_all_named_before_any_work(tmp_path: Path) -> None:
    """TrainOptions checks every flag: each problem names its flag, what is allowed and what
    was given, in one line, before the data is read."""
    result = modelship(
        "train",
        *("--data", "nowhere.csv", "--target", "y", "--task", "guess", "--cv", "1"),
        *("--test-size", "0.9", "--time-budget", "0s", "--max-model-mb", "lots"),
        *("--seed", "-1", "--features", ",", "--parity-tolerance", "-0.1"),
        cwd=tmp_path,
    )
    for words in [
        "--task must be one of auto, regression, classification, got 'guess'",
        "--cv must be a whole number from 2 to 20, got '1'",
        "--test-size must be a fraction from 0.05 to 0.5, got '0.9'",
        "--time-budget must be a duration above 0 such as 60s, 90 or 5m, got '0s'",
        "--max-model-mb must be a number of MB above 0, got 'lots'",
        "--seed must be a whole number from 0 to 4294967295, got '-1'",
        "--features must be comma-separated columns, got ','",
        "--parity-tolerance must be a number of at least 0, got '-0.1'",
    ]:
        assert_one_line_error(result, 2, words)
    assert "nowhere.csv" not in result.stderr  # no work started


def test_train_help_shows_the_options_defaults() -> None:
    from modelship.build.training.options import TrainOptions

    defaults = TrainOptions(data=Path("d.csv"), target="y", output=Path("o"))
    shown = " ".join(modelship("train", "--help").stdout.split())
    assert f"what was left is named ({defaults.time_budget_seconds:g}s)" in shown
    assert f"may choose ({defaults.max_model_mb:g})" in shown
    assert f"held-out fraction ({defaults.test_size:g})" in shown


def test_bad_environment_setting_is_named(tmp_path: Path) -> None:
    result = modelship("serve", cwd=tmp_path, env={"MODELSHIP_PORT": "eighty"})
    assert_one_line_error(result, 2, "setting MODELSHIP_PORT = 'eighty'")
    result = modelship("serve", "--keep-alive-seconds", "0", cwd=tmp_path)
    assert_one_line_error(result, 2, "setting MODELSHIP_KEEP_ALIVE_SECONDS = '0'")


def test_bad_csv_for_predict_is_one_line(regression_artifact: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("age,sex\n1,male\n")
    result = modelship("predict", str(regression_artifact), str(tmp_path / "bad.csv"))
    assert_one_line_error(result, 2, "line 1, field 'bmi': required column is missing")


def test_help_lists_the_commands() -> None:
    result = modelship("--help")
    assert result.returncode == 0
    for command in ("train", "predict", "info", "serve"):
        assert command in result.stdout
    assert "MODELSHIP_ARTIFACT" in modelship("serve", "--help").stdout


def test_serve_flags_are_the_settings_fields() -> None:
    """Every `serve` option is a Settings field (same name, its description, default and
    choices in --help): renaming or redescribing a field without the flag fails here."""
    from typing import get_args

    from modelship.contracts.settings import Settings

    result = modelship("serve", "--help")
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())  # argparse wraps lines
    flags = re.findall(r"\[--([a-z-]+)", result.stdout.split("\n\n")[0])
    assert flags and "help" not in flags
    for flag in flags:
        name = flag.replace("-", "_")
        field = Settings.model_fields[name]  # a flag with no field fails here
        assert field.description is not None
        assert " ".join(field.description.split()) in help_text, flag
        default = "none" if field.default is None else field.default
        assert f"(MODELSHIP_{name.upper()}; default {default})" in help_text, flag
    levels = get_args(Settings.model_fields["log_level"].annotation)
    refused = modelship("serve", "--log-level", "loud")
    assert refused.returncode == 2
    assert f"choose from {', '.join(map(repr, levels))}" in refused.stderr


def test_feedback_sends_a_labels_file_and_reports_every_outcome(
    regression_predictor: Predictor, tmp_path: Path
) -> None:
    from modelship.contracts.settings import Settings
    from modelship.serving.compose import build_serving
    from modelship.transport.http.app import create_app
    from tests.service.live import serve_in_thread

    app = create_app(build_serving(Settings.model_validate({}), regression_predictor))
    with serve_in_thread(app) as address:
        url = f"http://{address}"
        rows = regression_predictor.card.examples[:3]
        answer = httpx.post(f"{url}/predict/batch", json=rows, headers={"X-Request-Id": "q"})
        assert answer.status_code == 200
        labels = tmp_path / "labels.csv"
        labels.write_text("id,label\nq#0,100\nq#1,200\nq#1,300\nq#2,lots\nzz,1\n")
        result = modelship("feedback", url, str(labels))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "5 labels sent: 2 joined, 1 unknown, 0 expired, 1 duplicate, 1 invalid"
    assert "row 3: 'q#1' duplicate" in lines[1]
    assert "row 4: 'q#2' invalid: charges is a number" in lines[2]


def test_the_command_loads_no_metrics_library_before_serve_sets_it_up() -> None:
    """prometheus_client picks in-memory or per-process-file values when it is imported: if the
    `modelship` process (which runs a single worker itself) imported it before `serve` sets
    PROMETHEUS_MULTIPROC_DIR, /metrics would miss every request counted."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, modelship.cli; print('prometheus_client' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_rollout_status_on_a_server_without_a_candidate_exits_2_and_says_why(
    regression_predictor: Predictor,
) -> None:
    """Exit 2 (cannot ask), never 0, 1 or 3, which the deploy workflow reads as a verdict."""
    from modelship.contracts.settings import Settings
    from modelship.serving.compose import build_serving
    from modelship.transport.http.app import create_app
    from tests.service.live import serve_in_thread

    app = create_app(build_serving(Settings.model_validate({}), regression_predictor))
    with serve_in_thread(app) as address:
        for action in (["status"], ["wait", "--timeout", "5s"]):
            result = modelship("rollout", *action, f"http://{address}")
            assert result.returncode == 2, result
            assert "answered 404" in result.stderr and "no rollout" in result.stderr
    unreachable = modelship("rollout", "status", f"http://{address}")
    assert unreachable.returncode == 2
    assert "cannot reach" in unreachable.stderr
    bad = modelship("rollout", "wait", "http://127.0.0.1:9", "--timeout", "soon")
    assert bad.returncode == 2
    assert "'soon' is not a duration" in bad.stderr
