"""A rollout in one worker, through the HTTP interface: shadow and canary on every route, the
version named in every answer, the gates and the verdict, /metrics and the CloudWatch line.

Multi-worker behaviour (the verdict and the brake shared by the workers) is in
tests/service/serving/test_rollout_e2e.py, over real sockets.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelship.contracts.settings import Settings, load_settings, parse_traffic
from modelship.errors import ModelshipError
from modelship.model import artifact
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.serving.memory import memory_problem
from modelship.serving.monitoring.cloudwatch import CloudWatchEmitter
from modelship.serving.monitoring.monitor import Monitor
from tests.service.conftest import make_client

QUICK = {"rollout_min_requests": 50, "rollout_sync_seconds": 0.1, "access_log": False}


def _records(frame: pd.DataFrame, count: int, start: int = 0) -> list[dict[str, Any]]:
    rows = frame.drop(columns="charges").iloc[start : start + count]
    return rows.to_dict("records")  # type: ignore[return-value]


def _version(path: Path) -> str:
    return artifact.load(path).card.version


def _v2(records: list[dict[str, Any]]) -> dict[str, Any]:
    inputs = []
    for name in records[0]:
        values = [r[name] for r in records]
        kind = "BYTES" if isinstance(values[0], str) else "FP32"
        inputs.append({"name": name, "shape": [len(values)], "datatype": kind, "data": values})
    return {"inputs": inputs}


def _csv(records: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return text.getvalue().encode()


def _wait_for(client: TestClient, verdict: str, within: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        report: dict[str, Any] = client.get("/rollout").json()
        if report["verdict"] == verdict:
            return report
        time.sleep(0.1)
    raise AssertionError(f"no {verdict} within {within} s: {report}")


def _every_route(
    client: TestClient, model: str, records: list[dict[str, Any]], version: str
) -> list[Any]:
    """A JSON record, a JSON batch, a CSV file and a V2 request: each answered by `version`."""
    answers = [
        client.post("/predict", json=records[0]),
        client.post("/predict/batch", json=records),
        client.post("/predict/csv", content=_csv(records), headers={"content-type": "text/csv"}),
        client.post(f"/v2/models/{model}/infer", json=_v2(records)),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Modelship-Model-Version"] == version
    return answers


@pytest.fixture
def shadow_client(
    regression_artifact: Path, shuffled_candidate_artifact: Path
) -> Iterator[TestClient]:
    with make_client(
        regression_artifact,
        candidate=str(shuffled_candidate_artifact),
        candidate_traffic="shadow",
        **QUICK,
    ) as client:
        yield client


def test_shadow_answers_are_the_primary_only_answers_on_every_route(
    shadow_client: TestClient, client: TestClient, insurance_frame: pd.DataFrame
) -> None:
    """A bad candidate in shadow: not one answer differs from a primary-only service (JSON
    record, JSON batch, CSV file, V2), each names the primary's version, and the candidate,
    judged on the same rows off the path, is aborted."""
    primary = client.get("/model").json()["version"]
    records = _records(insurance_frame, 40)
    for i, record in enumerate(records):
        headers = {"X-Request-Id": f"r{i}"}
        ours, theirs = (
            c.post("/predict", json=record, headers=headers) for c in (shadow_client, client)
        )
        assert ours.json() == theirs.json()
        assert ours.headers["X-Modelship-Model-Version"] == primary
    ours, theirs = (
        c.post("/predict/batch", json=records, headers={"X-Request-Id": "b"})
        for c in (shadow_client, client)
    )
    assert ours.json() == theirs.json()
    model = client.get("/model").json()["name"]
    ours, theirs = (
        c.post(f"/v2/models/{model}/infer", json=_v2(records), headers={"X-Request-Id": "v"})
        for c in (shadow_client, client)
    )
    assert ours.json() == theirs.json()
    assert ours.json()["model_version"] == primary
    ours, theirs = (
        c.post(
            "/predict/csv",
            content=_csv(records),
            headers={"content-type": "text/csv", "X-Request-Id": "c"},
        )
        for c in (shadow_client, client)
    )
    assert ours.content == theirs.content
    assert ours.headers["X-Modelship-Model-Version"] == primary
    for i in range(60):  # enough compared requests for a verdict
        shadow_client.post("/predict", json=records[i % len(records)])
    report = _wait_for(shadow_client, "abort")
    failed = {g["gate"] for g in report["gates"] if g["state"] == "fail"}
    assert "divergence" in failed
    assert report["mode"] == "shadow"
    assert report["traffic"]["candidate_percent"] == 0


def test_canary_share_is_within_binomial_bounds_and_a_key_stays_on_its_version(
    regression_artifact: Path, good_candidate_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    """Canary 10%: over 2,000 routing keys the candidate answers within 4.5 standard deviations
    of 10%; a key answers from the same version every time."""
    candidate = _version(good_candidate_artifact)
    record = _records(insurance_frame, 1)[0]
    settings = {"rollout_min_requests": 1000, "rollout_window": 1000, "access_log": False}
    with make_client(
        regression_artifact,
        candidate=str(good_candidate_artifact),
        candidate_traffic="10%",
        **settings,
    ) as client:
        n = 2_000
        answered = [
            client.post("/predict", json=record, headers={"X-Modelship-Route-Key": f"user-{i}"})
            for i in range(n)
        ]
        by_candidate = sum(a.json()["model_version"] == candidate for a in answered)
        spread = 4.5 * math.sqrt(n * 0.1 * 0.9)
        assert abs(by_candidate - n * 0.1) <= spread, by_candidate
        kept = next(i for i, a in enumerate(answered) if a.json()["model_version"] == candidate)
        for _ in range(20):
            again = client.post(
                "/predict", json=record, headers={"X-Modelship-Route-Key": f"user-{kept}"}
            )
            assert again.json()["model_version"] == candidate
            assert again.headers["X-Modelship-Model-Version"] == candidate


def test_every_route_answers_from_the_routed_version_and_v2_reaches_a_version(
    regression_artifact: Path, good_candidate_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    """Canary 100%: JSON, CSV and V2 answers all come from the candidate and say so; the V2
    versioned route reaches either version; an unknown version is a 404 naming both."""
    primary, candidate = _version(regression_artifact), _version(good_candidate_artifact)
    records = _records(insurance_frame, 5)
    with make_client(
        regression_artifact, candidate=str(good_candidate_artifact), candidate_traffic="100"
    ) as client:
        model = client.get("/model").json()["name"]
        answers = _every_route(client, model, records, candidate)
        for answer in (answers[0], answers[1], answers[3]):
            assert answer.json()["model_version"] == candidate
        # Explanations come from the version that answered: they add up to its prediction.
        explained = client.post("/explain", json=records[0])
        assert explained.status_code == 200, explained.text
        body = explained.json()
        assert body["model_version"] == candidate
        total = body["explanation"]["base"] + sum(body["explanation"]["contributions"].values())
        assert total == pytest.approx(body["prediction"], rel=1e-4)
        for version in (primary, candidate):
            explicit = client.post(
                f"/v2/models/{model}/versions/{version}/infer", json=_v2(records)
            )
            assert explicit.json()["model_version"] == version
            assert explicit.headers["X-Modelship-Model-Version"] == version
        missing = client.post(f"/v2/models/{model}/versions/nope/infer", json=_v2(records))
        assert missing.status_code == 404
        message = missing.json()["error"]
        assert primary in message and candidate in message, message
        # The page shows both versions.
        page = client.get("/").text
        assert primary in page and candidate in page


def test_a_good_candidate_is_promoted_and_the_figures_reach_metrics(
    regression_artifact: Path, good_candidate_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    candidate = _version(good_candidate_artifact)
    records = _records(insurance_frame, 100)
    with make_client(
        regression_artifact, candidate=str(good_candidate_artifact), candidate_traffic="50", **QUICK
    ) as client:
        for i in range(120):
            client.post("/predict", json=records[i % 100], headers={"X-Request-Id": f"k{i}"})
        report = _wait_for(client, "promote")
        gates = {g["gate"]: g for g in report["gates"]}
        assert set(gates) == {
            "error_rate",
            "latency_p50",
            "latency_p99",
            "divergence",
            "prediction_drift",
            "live_quality",
        }
        assert all(g["passed"] for name, g in gates.items() if name != "live_quality")
        assert gates["divergence"]["value"] < gates["divergence"]["threshold"]
        metrics = client.get("/metrics").text
        assert f'modelship_rollout_aborted{{model_version="{candidate}"}} 0.0' in metrics
        assert (
            f'modelship_rollout_verdict{{model_version="{candidate}",verdict="promote"}} 1.0'
            in metrics
        )
        assert f'modelship_rollout_gate_value{{gate="divergence",model_version="{candidate}"}}' in (
            metrics
        )
        answered = [
            line for line in metrics.splitlines() if "modelship_rollout_answers_total" in line
        ]
        assert any(candidate in line for line in answered), answered


def test_the_brake_stops_candidate_answers_and_says_which_gate(
    regression_artifact: Path,
    shuffled_candidate_artifact: Path,
    insurance_frame: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Canary 50% with a shuffled-target candidate: abort within a bounded number of requests,
    one log line naming the gate and its value, then every answer from the primary."""
    primary, candidate = _version(regression_artifact), _version(shuffled_candidate_artifact)
    records = _records(insurance_frame, 100)
    with make_client(
        regression_artifact,
        candidate=str(shuffled_candidate_artifact),
        candidate_traffic="50",
        **QUICK,
    ) as client:
        sent = 0
        while client.get("/rollout").json()["verdict"] != "abort":
            client.post("/predict", json=records[sent % 100], headers={"X-Request-Id": f"a{sent}"})
            sent += 1
            assert sent <= 400, "no abort within 400 requests"
        # The min sample, plus the requests of one sync interval at most.
        assert sent <= QUICK["rollout_min_requests"] * 3
        after = [
            client.post("/predict", json=records[i % 100], headers={"X-Request-Id": f"z{i}"})
            for i in range(200)
        ]
        assert {a.json()["model_version"] for a in after} == {primary}
        metrics = client.get("/metrics").text
        assert f'modelship_rollout_aborted{{model_version="{candidate}"}} 1.0' in metrics
    lines = [r.getMessage() for r in caplog.records if "rollout: abort" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "gate divergence failed" in lines[0] and candidate in lines[0]


def test_the_cloudwatch_line_carries_rollout_aborted_at_the_service_level(
    regression_artifact: Path,
) -> None:
    card = artifact.load(regression_artifact).card
    written: list[bytes] = []
    emitter = CloudWatchEmitter(
        Monitor(card, Settings()), "svc", 60, None, written.append, rollout=lambda: True
    )
    emitter.emit()
    service = [orjson.loads(line) for line in written if b"RolloutAborted" in line]
    assert len(service) == 1
    (line,) = service
    assert line["RolloutAborted"] == 1.0
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]
    assert line["Service"] == "svc"


def test_candidate_traffic_grammar() -> None:
    assert parse_traffic("shadow") is None
    assert parse_traffic(" Shadow ") is None
    assert [parse_traffic(t) for t in ("0", "10", "10%", "100")] == [0, 10, 10, 100]
    for bad in ("101", "-5", "10.5", "half", "", "10 %"):
        with pytest.raises(ModelshipError) as caught:
            load_settings(candidate_traffic=bad)
        message = caught.value.message
        assert "MODELSHIP_CANDIDATE_TRAFFIC" in message
        assert "expected 'shadow' or a whole percentage from 0 to 100" in message


def test_no_rollout_is_a_clear_404(client: TestClient) -> None:
    answer = client.get("/rollout")
    assert answer.status_code == 404
    assert "--candidate" in answer.json()["error"]["message"]


def test_a_candidate_of_another_question_is_refused(
    regression_artifact: Path, classification_artifact: Path
) -> None:
    with pytest.raises(ModelshipError, match="cannot be compared"):
        build_serving(
            Settings(candidate=str(classification_artifact)),
            Predictor(artifact.load(regression_artifact)),
            Predictor(artifact.load(classification_artifact)),
        )


def test_readiness_counts_the_candidate_in_every_worker(
    regression_artifact: Path, good_candidate_artifact: Path
) -> None:
    """A limit that fits the primary's workers alone does not fit them with the candidate."""
    card = artifact.load(regression_artifact).card
    candidate = artifact.load(good_candidate_artifact).card
    assert card.footprint is not None and candidate.footprint is not None
    limit = int(card.footprint.serving_rss_mb * 2 * 1.1 * 2**20)
    settings = Settings(workers=2, memory_limit_bytes=limit)
    assert memory_problem(settings, card) is None
    problem = memory_problem(settings, card, candidate)
    assert problem is not None
    assert f"with candidate {candidate.name}" in problem


def test_a_candidate_with_float64_inputs_beside_a_float32_primary(
    regression_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    """The upgrade after issue 35: a primary made before float64 inputs (tests/testdata), a
    candidate made after. Each request is decoded once, with the primary's schema (float32
    numbers); the candidate still answers every route, and the primary on its V2 version."""
    old = Path(__file__).parents[2] / "testdata" / "float32-artifact"
    primary, candidate = _version(old), _version(regression_artifact)
    records = _records(insurance_frame, 5)
    with make_client(old, candidate=str(regression_artifact), candidate_traffic="100") as client:
        model = client.get("/model").json()["name"]
        _every_route(client, model, records, candidate)
        explained = client.post("/explain", json=records)
        assert explained.headers["X-Modelship-Model-Version"] == candidate, explained.text
        explicit = client.post(f"/v2/models/{model}/versions/{primary}/infer", json=_v2(records))
        assert explicit.headers["X-Modelship-Model-Version"] == primary
