"""Data quality and drift, over real HTTP against `modelship serve` with two workers."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.service.server import Server, running_server
from tests.service.traffic import records, scrape, send_every_transport

TRAINING_LIKE_ROWS = 400
SHIFTED_ROWS = 1_000


@pytest.fixture(scope="module")
def server(regression_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "MODELSHIP_MONITOR_INTERVAL_SECONDS": "0.2",
        "MODELSHIP_DRIFT_WINDOW_ROWS": "1000",
        "MODELSHIP_ACCESS_LOG": "false",
        "MODELSHIP_CLOUDWATCH_METRICS": "true",
        "MODELSHIP_CLOUDWATCH_INTERVAL_SECONDS": "1",
        "MODELSHIP_CLOUDWATCH_SERVICE": "monitoring-test",
    }
    with running_server(
        "--artifact",
        str(regression_artifact),
        "--workers",
        "2",
        cwd=tmp_path_factory.mktemp("serve"),
        env=env,
    ) as running:
        # Drain the server's output (it would block once the pipe is full), keeping its lines.
        lines: list[str] = []
        output = running.process.stdout
        assert output is not None

        def drain() -> None:
            with contextlib.suppress(ValueError):  # the pipe is closed when the server stops
                lines.extend(output)

        threading.Thread(target=drain, daemon=True).start()
        running.lines = lines  # type: ignore[attr-defined]
        yield running


def _drift_once_settled(url: str, rows: int) -> dict[str, Any]:
    """/model/drift once every worker has folded its rows in (they do so every 0.2 s)."""
    deadline = time.monotonic() + 20
    while True:
        report: dict[str, Any] = httpx.get(f"{url}/model/drift", timeout=10).json()
        if all(f["rows"] == rows for f in report["features"]) or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def _states(report: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["state"] for f in report["features"]}


def _same_from_every_worker(url: str) -> dict[str, Any]:
    """Fresh connections land on either worker: both must describe the same window."""
    answers: list[dict[str, Any]] = []
    pids: set[int] = set()
    while len(pids) < 2 or len(answers) < 6:
        assert len(answers) < 60, "every answer came from one worker: the test proves nothing"
        answer = httpx.get(f"{url}/model/drift", timeout=10).json()
        pids.add(answer.pop("worker_pid"))
        answers.append(answer)
    assert all(answer == answers[0] for answer in answers)
    return answers[0]


def _send_shifted(server: Server, features: pd.DataFrame) -> pd.DataFrame:
    """Rows like the training data but bmi 4 standard deviations up and every row from one
    region, sent over every transport; returns them."""
    shifted = features.sample(SHIFTED_ROWS, random_state=8, replace=True).reset_index(drop=True)
    shifted["bmi"] += 4 * features["bmi"].std()
    shifted["region"] = "southwest"
    send_every_transport(server.url, shifted)
    return shifted


@pytest.mark.slow
def test_training_rows_stay_ok_and_shifted_features_drift(
    server: Server, insurance_frame: pd.DataFrame
) -> None:
    features = insurance_frame.drop(columns="charges")
    before = _drift_once_settled(server.url, 0)
    assert set(_states(before).values()) == {"insufficient_data"}

    like_training = features.sample(TRAINING_LIKE_ROWS, random_state=7)
    send_every_transport(server.url, like_training)
    report = _drift_once_settled(server.url, TRAINING_LIKE_ROWS)
    assert set(_states(report).values()) == {"ok"}, report
    assert report["prediction"]["state"] == "ok"
    report = _same_from_every_worker(server.url)
    metrics = scrape(server.url)
    for name in features.columns:
        key = (("feature", name), ("kind", "feature"))
        assert metrics[("modelship_drift_window_rows", key)] == TRAINING_LIKE_ROWS
        assert metrics[("modelship_drift_state", (*key, ("state", "ok")))] == 1
        assert metrics[("modelship_drift_psi", key)] < 0.2
    assert metrics[("modelship_feature_out_of_range_values_total", (("feature", "bmi"),))] == 0

    # bmi moved by 4 standard deviations, every row from one region: a window of 1,000 rows
    # filled with these drifts for exactly those two features.
    shifted = _send_shifted(server, features)
    sent = (len(shifted) // 4) * 4
    deadline = time.monotonic() + 20
    while _states(report) != {**_states(report), "bmi": "drift", "region": "drift"}:
        assert time.monotonic() < deadline, report
        time.sleep(0.2)
        report = httpx.get(f"{server.url}/model/drift", timeout=10).json()
    report = _same_from_every_worker(server.url)
    assert _states(report) == {
        "age": "ok",
        "sex": "ok",
        "bmi": "drift",
        "children": "ok",
        "smoker": "ok",
        "region": "drift",
    }
    metrics = scrape(server.url)
    bmi = (("feature", "bmi"), ("kind", "feature"))
    assert metrics[("modelship_drift_state", (*bmi, ("state", "drift")))] == 1
    assert metrics[("modelship_drift_psi", bmi)] > metrics[("modelship_drift_threshold", bmi)]
    beyond = int((shifted["bmi"].iloc[:sent] > features["bmi"].max()).sum())
    assert beyond > 0
    assert metrics[("modelship_feature_out_of_range_values_total", (("feature", "bmi"),))] == beyond


@pytest.mark.slow
def test_missing_and_unseen_values_are_counted_per_feature(
    server: Server, insurance_frame: pd.DataFrame
) -> None:
    # A series the server has not written yet counts as 0.
    missing_key = ("modelship_feature_missing_values_total", (("feature", "age"),))
    unseen_key = ("modelship_feature_unseen_categories_total", (("feature", "region"),))
    before = scrape(server.url)
    record = records(insurance_frame.drop(columns="charges").head(1))[0]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(3):
            response = client.post("/predict", json={**record, "age": None, "region": "mars"})
            assert response.status_code == 200
    deadline = time.monotonic() + 20
    while True:
        after = scrape(server.url)
        if after.get(missing_key, 0) - before.get(missing_key, 0) == 3:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert after.get(unseen_key, 0) - before.get(unseen_key, 0) == 3
    # The value itself never becomes a label.
    assert not any("mars" in str(labels) for _, labels in after)


def _emf_documents(server: Server) -> list[dict[str, Any]]:
    lines: list[str] = server.lines  # type: ignore[attr-defined]
    return [json.loads(line) for line in list(lines) if line.startswith('{"_aws"')]


@pytest.mark.slow
def test_cloudwatch_lines_come_from_one_worker_in_embedded_metric_format(
    server: Server, insurance_frame: pd.DataFrame
) -> None:
    """Drifted features reach the EMF lines, and every request is counted, those before the
    first line too. The shifted rows are sent here too: the drift test may have run on another
    test worker, with a server of its own (and this test may start that server: sending can
    then end before the first line is written)."""
    _send_shifted(server, insurance_frame.drop(columns="charges"))
    sent = SHIFTED_ROWS // 4 + 3  # a request per row on /predict, one on each other transport
    deadline = time.monotonic() + 20
    while True:
        documents = _emf_documents(server)
        per_service = [d for d in documents if set(d) - {"_aws"} >= {"Service", "FeaturesInDrift"}]
        counted = sum(d["Requests"] for d in per_service)
        if per_service and per_service[-1]["FeaturesInDrift"] == 2 and counted >= sent:
            break
        assert time.monotonic() < deadline, (counted, sent, documents[-5:])
        time.sleep(0.5)
    for document in documents:  # the format CloudWatch Logs extracts metrics from
        meta = document["_aws"]
        assert isinstance(meta["Timestamp"], int)
        (directive,) = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "modelship"
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(document[name], str) for name in dimension_set)
        for metric in directive["Metrics"]:
            assert isinstance(document[metric["Name"]], float)
            assert metric["Unit"] in ("Count", "None")
        assert document["Service"] == "monitoring-test"
    # One writer per task, whichever worker holds the lock: lines a full interval apart.
    stamps = [d["_aws"]["Timestamp"] for d in per_service]
    assert all(later - earlier >= 500 for earlier, later in itertools.pairwise(stamps))
    # Live quality: no lines before labels arrive (a metric costs for every hour it gets one).
    assert not any("QualityBelowTest" in d or "ModelVersion" in d for d in documents)
    bmi = [d for d in documents if d.get("Signal") == "feature:bmi"]
    assert bmi[-1]["DriftPSI"] > 0.2
