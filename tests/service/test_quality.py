"""Labels joined online and offline, end to end: `modelship serve --workers 2` over HTTP,
10,000 predictions through every native transport, labels for 8,000 of them posted in parts
(with unknown ids, duplicates and invalid labels mixed in), captures in an S3 or GCS emulator;
the live metrics (GET /model/quality) and the offline ones (`modelship quality` as a
subprocess) equal scikit-learn's on the joined rows."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from modelship.model import artifact
from tests.service.object_stores import BUCKET, gcs_server, s3_server
from tests.service.server import capturing_server
from tests.service.traffic import records

PREDICTIONS = 10_000
LABELLED = 8_000
UNKNOWN, DUPLICATES, INVALID = 200, 300, 150


def _predict(url: str, frame: pd.DataFrame) -> dict[str, float]:
    """10,000 rows: 2,000 single records, 6,000 in JSON batches of 500, 2,000 in one CSV file;
    the prediction each row's client received, by prediction id."""
    served: dict[str, float] = {}
    rows = frame.drop(columns="charges")
    with httpx.Client(base_url=url, timeout=60) as client:
        for record in records(rows.iloc[:2_000]):
            answer = client.post("/predict", json=record).json()
            served[answer["id"]] = answer["prediction"]
        for start in range(2_000, 8_000, 500):
            body = client.post("/predict/batch", json=records(rows.iloc[start : start + 500]))
            served.update({p["id"]: p["prediction"] for p in body.json()["predictions"]})
        text = rows.iloc[8_000:].to_csv(index=False)
        answer = client.post("/predict/csv", content=text, headers={"content-type": "text/csv"})
        for row in csv.DictReader(io.StringIO(answer.text)):
            served[row["prediction_id"]] = float(row["predicted_charges"])
    assert len(served) == PREDICTIONS
    return served


def _labels(served: dict[str, float], truth: dict[str, float]) -> list[tuple[str, Any]]:
    """Labels for 8,000 predictions in a shuffled order, then unknown ids, repeats of labels
    already given, and labels that are not numbers (for predictions left unlabelled)."""
    rng = np.random.default_rng(7)
    ids = list(served)
    order = rng.permutation(len(ids))
    labelled = [ids[i] for i in order[:LABELLED]]
    unlabelled = [ids[i] for i in order[LABELLED:]]
    items: list[tuple[str, Any]] = [(i, truth[i]) for i in labelled]
    items += [(f"nobody-{n}", 1.0) for n in range(UNKNOWN)]
    items += [(labelled[n], 2.0) for n in range(DUPLICATES)]
    items += [(unlabelled[n], "n/a") for n in range(INVALID)]
    return [items[i] for i in rng.permutation(len(items))]


def _expected(items: list[tuple[str, Any]], served: dict[str, float]) -> dict[str, float]:
    """scikit-learn's metrics on the joined rows: each answered prediction with the first
    number sent for it (a repeat may come first: then it is the one that counts)."""
    first: dict[str, float] = {}
    for item_id, label in items:
        if item_id in served and isinstance(label, float):
            first.setdefault(item_id, label)
    assert len(first) == LABELLED
    y_true = list(first.values())
    y_pred = [served[i] for i in first]
    return {
        "r2": sk.r2_score(y_true, y_pred),
        "mae": sk.mean_absolute_error(y_true, y_pred),
        "rmse": sk.root_mean_squared_error(y_true, y_pred),
    }


def _same(ours: dict[str, Any], expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_labels_join_live_and_offline_exactly(
    scheme: str, regression_artifact: Path, insurance_frame: pd.DataFrame, tmp_path: Path
) -> None:
    version = artifact.load(regression_artifact).card.version
    frame = insurance_frame.sample(PREDICTIONS, replace=True, random_state=11)
    with s3_server() if scheme == "s3" else gcs_server() as env:
        store_uri = f"{scheme}://{BUCKET}/prod"
        with capturing_server(
            regression_artifact,
            store_uri,
            env,
            tmp_path,
            capture_buffer_rows="20000",
            capture_interval_seconds="1",
        ) as server:
            served = _predict(server.url, frame)
            # Row i of the frame was predicted as the i-th id answered: its truth is its charges.
            truth = dict(zip(served, frame["charges"].astype(float), strict=True))
            items = _labels(served, truth)
            time.sleep(2)  # past the workers' feedback_flush_seconds: every answer is joinable
            totals = dict.fromkeys(["received", "joined", "unknown", "duplicate", "invalid"], 0)
            for n, start in enumerate(range(0, len(items), 1_000)):
                part = items[start : start + 1_000]
                if n % 2:  # every other part as CSV, each on a new connection (any worker)
                    text = "id,label\n" + "".join(f"{i},{v}\n" for i, v in part)
                    answer = httpx.post(
                        f"{server.url}/feedback",
                        content=text,
                        headers={"content-type": "text/csv"},
                        timeout=60,
                    )
                else:
                    answer = httpx.post(
                        f"{server.url}/feedback",
                        json=[{"id": i, "label": v} for i, v in part],
                        timeout=60,
                    )
                assert answer.status_code == 200, answer.text
                for key in totals:
                    totals[key] += answer.json()[key]
            assert totals == {
                "received": LABELLED + UNKNOWN + DUPLICATES + INVALID,
                "joined": LABELLED,
                "unknown": UNKNOWN,
                "duplicate": DUPLICATES,
                "invalid": INVALID,
            }
            expected = _expected(items, served)
            for _ in range(4):  # new connections, so both workers answer: one join for both
                answer = httpx.get(f"{server.url}/model/quality", timeout=30)
                judged = answer.json()["model_versions"][version]
                assert judged["labelled_rows"] == LABELLED
                _same(judged["live"], expected)
            assert server.stop() == 0

        labels_file = tmp_path / "labels.csv"
        with labels_file.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "label"])
            writer.writerows(items)
        offline = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelship",
                "quality",
                store_uri,
                "--labels",
                str(labels_file),
                "--json",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=300,
            check=False,
        )
    assert offline.returncode == 0, offline.stderr
    report = json.loads(offline.stdout)
    assert report["joined"] == LABELLED
    assert report["unknown"] == UNKNOWN
    assert report["invalid"] == INVALID
    ((found, judged_offline),) = report["model_versions"].items()
    assert found == version
    assert judged_offline["labelled_rows"] == LABELLED
    assert sum(day["labelled_rows"] for day in judged_offline["days"].values()) == LABELLED
    _same(judged_offline["metrics"], expected)
