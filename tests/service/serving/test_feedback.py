"""Prediction ids, labels joined to predictions (POST /feedback) and live quality
(GET /model/quality, /metrics), over HTTP with TestClient; metrics checked against scikit-learn."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics as sk

from modelship.serving.monitoring.cloudwatch import CloudWatchEmitter
from tests.service.conftest import make_client
from tests.service.server import running_server


def _records(frame: pd.DataFrame, target: str, rows: int) -> list[dict[str, Any]]:
    return [
        {str(k): v for k, v in row.items()}
        for row in frame.drop(columns=target).head(rows).to_dict(orient="records")
    ]


def test_every_answered_row_has_an_id(client: TestClient, insurance_frame: pd.DataFrame) -> None:
    records = _records(insurance_frame, "charges", 3)
    single = client.post("/predict", json=records[0], headers={"X-Request-Id": "claim-17"})
    assert single.json()["id"] == "claim-17" == single.headers["x-request-id"]

    batch = client.post("/predict/batch", json=records, headers={"X-Request-Id": "b1"})
    assert [p["id"] for p in batch.json()["predictions"]] == ["b1#0", "b1#1", "b1#2"]
    assert batch.headers["x-modelship-prediction-ids"] == "b1#0..b1#2"

    generated = client.post("/predict/batch", json=records[:1])
    rid = generated.headers["x-request-id"]
    assert generated.json()["predictions"][0]["id"] == f"{rid}#0"

    text = insurance_frame.drop(columns="charges").head(3).to_csv(index=False)
    answer = client.post(
        "/predict/csv", content=text, headers={"content-type": "text/csv", "X-Request-Id": "f"}
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["prediction_id"] for r in rows] == ["f#0", "f#1", "f#2"]
    assert answer.headers["x-modelship-prediction-ids"] == "f#0..f#2"

    v2 = client.post(
        f"/v2/models/{client.get('/model').json()['name']}/infer",
        json={
            "inputs": [
                {
                    "name": name,
                    "shape": [2],
                    "datatype": "BYTES" if isinstance(records[0][name], str) else "FP32",
                    "data": [r[name] for r in records[:2]],
                }
                for name in records[0]
            ]
        },
        headers={"X-Request-Id": "v"},
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["parameters"]["prediction_ids"] == ["v#0", "v#1"]
    assert v2.headers["x-modelship-prediction-ids"] == "v#0..v#1"


def test_labels_join_and_live_metrics_equal_scikit_learn(
    regression_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    with make_client(regression_artifact, quality_min_rows=10) as client:
        records = _records(insurance_frame, "charges", 300)
        answer = client.post("/predict/batch", json=records, headers={"X-Request-Id": "r"})
        predicted = {p["id"]: p["prediction"] for p in answer.json()["predictions"]}
        truth = insurance_frame["charges"].head(300).tolist()
        items: list[dict[str, Any]] = [{"id": f"r#{i}", "label": truth[i]} for i in range(250)]
        items += [
            {"id": "r#0", "label": 1.0},  # duplicate: the first label counts
            {"id": "nobody", "label": 1.0},  # unknown
            {"id": "r#260", "label": "lots"},  # invalid label
            {"id": 7, "label": 1.0},  # invalid id
            {"label": 1.0},  # no id
        ]
        report = client.post("/feedback", json=items).json()
        assert {
            k: report[k] for k in ("received", "joined", "duplicate", "unknown", "invalid")
        } == {
            "received": 255,
            "joined": 250,
            "duplicate": 1,
            "unknown": 1,
            "invalid": 3,
        }
        assert [p["outcome"] for p in report["problems"]] == [
            "duplicate",
            "unknown",
            "invalid",
            "invalid",
            "invalid",
        ]
        # One more, as a CSV; re-sending all of them only adds duplicates.
        more = client.post(
            "/feedback",
            content=f"id,label\nr#250,{truth[250]}\n",
            headers={"content-type": "text/csv"},
        )
        assert more.json()["joined"] == 1
        again = client.post("/feedback", json=items[:251]).json()
        assert again["duplicate"] == 251 and again["joined"] == 0

        quality = client.get("/model/quality").json()["model_versions"]
        ((version, judged),) = quality.items()
        assert version == answer.json()["model_version"]
        y_true = truth[:251]
        y_pred = [predicted[f"r#{i}"] for i in range(251)]
        live = judged["live"]
        assert judged["labelled_rows"] == 251
        assert live["r2"] == pytest.approx(sk.r2_score(y_true, y_pred), abs=1e-9)
        assert live["mae"] == pytest.approx(sk.mean_absolute_error(y_true, y_pred), abs=1e-9)
        assert live["rmse"] == pytest.approx(sk.root_mean_squared_error(y_true, y_pred), abs=1e-9)
        assert judged["test"]["r2"] == client.get("/model").json()["metrics"]["test"]["r2"]
        assert judged["state"] == "ok"

        scraped = client.get("/metrics").text
        assert (
            f'modelship_quality{{metric="r2",model_version="{version}",source="live"}}' in scraped
        )
        assert f'modelship_quality_below_test{{model_version="{version}"}} 0.0' in scraped
        assert 'modelship_feedback_labels_total{outcome="duplicate"}' in scraped


def test_labels_join_rows_of_a_csv_predicted_in_chunks(
    regression_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    """A file's chunks are remembered as one entry each (its rows' ids are derived from the
    request id and the row index): a label still joins its own row, in any chunk, with the very
    prediction the CSV answered."""
    with make_client(regression_artifact, csv_chunk_rows=100, quality_min_rows=3) as client:
        frame = insurance_frame.head(250)
        answer = client.post(
            "/predict/csv",
            content=frame.drop(columns="charges").to_csv(index=False),
            headers={"content-type": "text/csv", "X-Request-Id": "upload"},
        )
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        picked = [0, 99, 100, 137, 249]  # both sides of a chunk's edge, and the last row
        assert [rows[i]["prediction_id"] for i in picked] == [f"upload#{i}" for i in picked]
        truth = frame["charges"].tolist()
        items = [{"id": f"upload#{i}", "label": truth[i]} for i in picked]
        items += [{"id": "upload#250", "label": 1.0}, {"id": "upload", "label": 1.0}]
        report = client.post("/feedback", json=items).json()
        assert (report["joined"], report["unknown"]) == (5, 2), report
        assert client.post("/feedback", json=items[1:2]).json()["duplicate"] == 1

        live = client.get("/model/quality").json()["model_versions"][
            answer.headers["x-modelship-model-version"]
        ]["live"]
        predicted = [float(list(rows[i].values())[-2]) for i in picked]  # before the id
        expected = sk.mean_absolute_error([truth[i] for i in picked], predicted)
        assert live["mae"] == pytest.approx(expected, rel=1e-6)


def test_the_row_window_forgets_the_oldest_answers_whole(
    regression_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    """Past `feedback_window_rows` the oldest answers are forgotten (a label for them is
    expired, not unknown) and the latest ones still join."""
    with make_client(regression_artifact, feedback_window_rows=1_000) as client:
        records = _records(insurance_frame, "charges", 600)
        for name in ("old", "new1", "new2"):
            client.post("/predict/batch", json=records, headers={"X-Request-Id": name})
        feedback = client.app.state.dataplane.feedback  # type: ignore[attr-defined]
        feedback.flush(sweep=True)
        assert feedback.remembered() == 1_200
        report = client.post(
            "/feedback",
            json=[{"id": "old#5", "label": 1.0}, {"id": "new1#599", "label": 1.0}],
        ).json()
        assert (report["expired"], report["joined"]) == (1, 1), report


def test_a_request_id_sent_again_is_a_new_answer_with_a_label_of_its_own(
    client: TestClient,
) -> None:
    example = client.get("/model/examples/0").json()
    outcomes = []
    for _ in range(2):
        client.post("/predict", json=example, headers={"X-Request-Id": "again"})
        for _ in range(2):
            report = client.post("/feedback", json={"id": "again", "label": 100.0}).json()
            outcomes.append("joined" if report["joined"] else report["problems"][0]["outcome"])
    assert outcomes == ["joined", "duplicate", "joined", "duplicate"]


def test_classification_labels_accuracy_recall_and_log_loss(
    classification_artifact: Path, iris_csv: Path
) -> None:
    frame = pd.read_csv(iris_csv).sample(frac=1.0, random_state=3)
    with make_client(classification_artifact, quality_min_rows=10) as client:
        answer = client.post("/predict/batch", json=_records(frame, "species", 150))
        rows = answer.json()["predictions"]
        classes = client.get("/model").json()["classes"]
        # Every third label is wrong on purpose: the live figures must say so, exactly.
        truth = frame["species"].tolist()
        truth = [
            classes[(classes.index(t) + 1) % 3] if i % 3 == 0 else t for i, t in enumerate(truth)
        ]
        text = "label,id\n" + "".join(f"{t},{r['id']}\n" for t, r in zip(truth, rows, strict=True))
        text += "virginica-ish,whatever\n"
        report = client.post("/feedback", content=text, headers={"content-type": "text/csv"}).json()
        assert report["joined"] == 150 and report["invalid"] == 0 and report["unknown"] == 1
        bad = client.post("/feedback", json={"id": rows[0]["id"], "label": "rose"}).json()
        assert bad["duplicate"] == 1  # checked before the label: one label per prediction

        judged = client.get("/model/quality").json()["model_versions"][
            answer.json()["model_version"]
        ]
        live = judged["live"]
        predicted = [r["prediction"] for r in rows]
        probabilities = np.array([[r["probabilities"][c] for c in classes] for r in rows])
        assert live["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted), abs=1e-9)
        recall = sk.recall_score(truth, predicted, labels=classes, average=None)
        for name, expected in zip(classes, recall, strict=True):
            assert live["per_class"][name]["recall"] == pytest.approx(expected, abs=1e-9)
        # The card's log loss (and so the live one) is over each row's probabilities scaled to
        # sum to 1: float32 ones do not quite, and scikit-learn now only warns about that.
        scaled = probabilities / probabilities.sum(axis=1, keepdims=True)
        assert live["log_loss"] == pytest.approx(
            sk.log_loss(truth, scaled, labels=classes), abs=1e-9
        )
        assert judged["state"] == "below_test"  # a third wrong is far below the test accuracy
        version = answer.json()["model_version"]
        assert f'modelship_quality_below_test{{model_version="{version}"}} 1.0' in (
            client.get("/metrics").text
        )
        # The CloudWatch lines: per version, and the Service-level verdict the alarm watches.
        lines: list[bytes] = []
        emitter = CloudWatchEmitter(
            client.app.state.monitor,  # type: ignore[attr-defined]
            "svc",
            60,
            None,
            lines.append,
            quality=client.app.state.dataplane.feedback.quality,  # type: ignore[attr-defined]
        )
        emitter.emit()
        documents = [json.loads(line) for line in lines]
        (per_version,) = [d for d in documents if "ModelVersion" in d]
        assert per_version["ModelVersion"] == version
        assert per_version["LiveQuality"] == pytest.approx(live["accuracy"])
        assert per_version["LabelledRows"] == 150
        assert per_version["QualityBelowTest"] == 1.0
        (service,) = [
            d for d in documents if set(d) >= {"Service", "Requests"} or "FeaturesInDrift" in d
        ]
        assert service["QualityBelowTest"] == 1.0 and "ModelVersion" not in service


def test_a_label_not_of_the_target_is_invalid_and_says_why(iris_client: TestClient) -> None:
    answer = iris_client.post("/predict/batch", json=iris_client.get("/model/examples").json()[:1])
    prediction_id = answer.json()["predictions"][0]["id"]
    report = iris_client.post("/feedback", json={"id": prediction_id, "label": "rose"}).json()
    assert report["invalid"] == 1
    assert "one of the model's classes" in report["problems"][0]["message"]


def test_late_labels_are_expired(regression_artifact: Path) -> None:
    with make_client(regression_artifact, feedback_window_seconds=1) as client:
        example = client.get("/model/examples/0").json()
        client.post("/predict", json=example, headers={"X-Request-Id": "old"})
        time.sleep(1.3)
        report = client.post("/feedback", json={"id": "old", "label": 100.0}).json()
        assert report["expired"] == 1
        assert "modelship quality" in report["problems"][0]["message"]


@pytest.mark.parametrize(
    ("body", "media", "status", "text"),
    [
        (b"{", "application/json", 400, "not valid JSON"),
        (b"[]", "application/json", 422, "no labels"),
        (b"42", "application/json", 422, "expected a JSON object or array"),
        (b"id,truth\nx,1\n", "text/csv", 422, "label"),
        (b"id,label\n", "text/csv", 422, "no labels after the header"),
        (b"\xff\xfe", "text/csv", 400, "not UTF-8"),
        (b"x", "application/xml", 415, "application/xml"),
    ],
)
def test_feedback_bodies_that_cannot_be_read(
    client: TestClient, body: bytes, media: str, status: int, text: str
) -> None:
    answer = client.post("/feedback", content=body, headers={"content-type": media})
    assert answer.status_code == status
    assert text in answer.json()["error"]["message"]


def test_feedback_off_is_a_clear_404(regression_artifact: Path) -> None:
    with make_client(regression_artifact, feedback=False) as client:
        for answer in (
            client.post("/feedback", json={"id": "a", "label": 1}),
            client.get("/model/quality"),
        ):
            assert answer.status_code == 404
            assert "MODELSHIP_FEEDBACK" in answer.json()["error"]["message"]


def _workers(supervisor: int) -> list[int]:
    """The worker processes `modelship serve` started (children running multiprocessing's
    spawn entry point, not its resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        if parent == supervisor and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_labels_join_after_the_worker_that_answered_is_gone(
    regression_artifact: Path, insurance_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """Two workers answer 20 batches (new connections: both answer some); one is killed
    (SIGKILL: no shutdown, no last flush) once its answers are written; every label joins."""
    rows = _records(insurance_frame, "charges", 10)
    env = {"MODELSHIP_ACCESS_LOG": "false"}
    with running_server(
        "--artifact", str(regression_artifact), "--workers", "2", cwd=tmp_path, env=env
    ) as server:
        ids = []
        for n in range(20):
            answer = httpx.post(
                f"{server.url}/predict/batch", json=rows, headers={"X-Request-Id": f"k{n}"}
            )
            ids += [p["id"] for p in answer.json()["predictions"]]
        time.sleep(2)  # past MODELSHIP_FEEDBACK_FLUSH_SECONDS
        workers = _workers(server.process.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        labels = [{"id": i, "label": 1000.0} for i in ids]
        report = httpx.post(f"{server.url}/feedback", json=labels, timeout=30).json()
        assert (report["joined"], report["unknown"]) == (200, 0)
        server.stop()


def test_fresh_request_ids_are_unique_in_a_worker_and_across_forked_workers() -> None:
    """Generated ids are read from the OS in batches: a worker forked after its parent read a
    batch must not hand out the parent's next ids (the feedback join keys on them)."""
    from modelship.transport.http.middleware import new_request_id

    first = [new_request_id(None) for _ in range(600)]  # more than one batch
    assert len(set(first)) == 600
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in first)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the forked worker
        os.write(write, b"".join(new_request_id(None) for _ in range(20)))
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    in_child = {data[i : i + 32] for i in range(0, len(data), 32)}
    in_parent = {new_request_id(None) for _ in range(20)}
    assert len(in_child) == 20 and not in_child & in_parent
    assert new_request_id(b"claim-17") == b"claim-17"
