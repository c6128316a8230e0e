"""The monitor in process: sliding window, references, old artifacts, settings, classification."""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from modelship.contracts.settings import Settings, load_settings
from modelship.errors import ModelshipError
from modelship.model import artifact
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictions, Predictor
from modelship.serving.dataplane import DataPlane
from modelship.serving.feedback import PredictionIds
from modelship.serving.monitoring import monitor as monitor_module
from modelship.serving.monitoring.distribution import (
    categorical_reference,
    numeric_bins,
    numeric_reference,
    psi,
    reference_shares,
)
from modelship.serving.monitoring.monitor import Monitor
from tests.service.conftest import make_client


def test_numeric_reference_bins_training_values_into_deciles() -> None:
    values = np.arange(1000, dtype=np.float64)
    values[:50] = np.nan
    reference = numeric_reference(values)
    assert len(reference.edges) == 9
    assert reference.missing == pytest.approx(0.05)
    assert sum(reference.proportions) + reference.missing == pytest.approx(1.0)
    assert max(reference.proportions) == pytest.approx(0.095, abs=0.002)
    edges = np.asarray(reference.edges, dtype=np.float32)
    bins = numeric_bins(edges, np.array([[-5.0], [np.nan], [1e9]], dtype=np.float32))
    assert bins.tolist() == [0, len(edges) + 1, len(edges)]


def test_few_distinct_values_give_fewer_bins() -> None:
    reference = numeric_reference([0.0, 1.0] * 100)
    assert reference.edges == [0.0, 1.0]
    assert reference.proportions == [0.0, 0.5, 0.5]


def test_categorical_reference_keeps_the_ten_most_frequent() -> None:
    values = [f"c{i:02d}" for i in range(20) for _ in range(20 - i)]
    reference = categorical_reference(values)
    assert list(reference.frequencies) == [f"c{i:02d}" for i in range(10)]
    assert reference.other == pytest.approx(sum(range(1, 11)) / len(values))


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    expected = [0.25, 0.25, 0.25, 0.25]
    assert psi(expected, 1000, [250, 250, 250, 250]) == pytest.approx(0.0, abs=1e-9)
    assert psi(expected, 1000, [0, 0, 0, 1000]) > 2
    assert np.isfinite(psi([1.0, 0.0], 1000, [0, 500]))


def _regression_monitor(path: Path, **settings: object) -> tuple[Monitor, Predictor]:
    predictor = Predictor(artifact.load(path))
    return Monitor(predictor.card, Settings(**settings)), predictor  # type: ignore[arg-type]


def test_the_window_holds_exactly_the_most_recent_rows(regression_artifact: Path) -> None:
    monitor, predictor = _regression_monitor(
        regression_artifact, drift_window_rows=100, drift_min_rows=50
    )
    reference = predictor.card.feature("age").distribution
    assert reference is not None and reference.kind == "numeric"
    edges = np.asarray(reference.edges, dtype=np.float32)
    rng = np.random.default_rng(0)
    served: list[np.ndarray] = []
    for size in (30, 50, 1, 70, 250, 20):
        ages = rng.uniform(18, 64, size).astype(np.float32)
        batch = RecordsCodec(predictor.schema).decode(
            [{**predictor.card.examples[0], "age": float(a)} for a in ages]
        )
        monitor.observe(batch.feeds, predictor.predict(batch))
        served.append(batch.feeds[predictor.card.feature("age").input_name].reshape(-1))
        monitor.fold()
        recent = np.concatenate(served)[-100:]
        expected = np.bincount(numeric_bins(edges, recent), minlength=len(edges) + 2)
        assert monitor.window_counts()[("feature", "age")] == expected.tolist()


def test_an_artifact_without_distributions_says_unavailable(
    regression_artifact: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(regression_artifact, old)
    card_path = old / artifact.CARD_FILE
    card = json.loads(card_path.read_text())
    card.pop("prediction_distribution")
    for feature in card["features"]:
        feature.pop("distribution")
    card_path.write_text(json.dumps(card))
    with make_client(old) as client:
        example = client.get("/model/examples/0").json()
        assert client.post("/predict", json=example).status_code == 200
        report = client.get("/model/drift").json()
        assert {f["state"] for f in report["features"]} == {"unavailable"}
        assert report["prediction"]["state"] == "unavailable"
        metrics = client.get("/metrics").text
        assert 'modelship_drift_state{feature="bmi",kind="feature",state="unavailable"} 1.0' in (
            metrics
        )


def test_monitoring_off_answers_404_and_observes_nothing(regression_artifact: Path) -> None:
    with make_client(regression_artifact, monitoring=False) as client:
        response = client.get("/model/drift")
        assert response.status_code == 404
        assert "MODELSHIP_MONITORING=false" in response.json()["error"]["message"]
        assert client.app.state.monitor is None  # type: ignore[attr-defined]


def test_per_feature_thresholds_are_checked_against_the_card(regression_artifact: Path) -> None:
    with pytest.raises(ModelshipError, match="'weight', not a feature of the model"):
        _regression_monitor(regression_artifact, drift_feature_thresholds={"weight": 0.3})
    monitor, _ = _regression_monitor(regression_artifact, drift_feature_thresholds={"bmi": 0.5})
    thresholds = {d.name: d.threshold for d in monitor.drift()}
    assert thresholds["bmi"] == 0.5 and thresholds["age"] == 0.2


def test_settings_refuse_a_minimum_above_the_window() -> None:
    with pytest.raises(ModelshipError, match=r"drift_min_rows \(500\) cannot exceed"):
        load_settings(drift_window_rows=400, drift_min_rows=500)


def test_classifier_predictions_drift_by_predicted_class(classification_artifact: Path) -> None:
    with make_client(
        classification_artifact, drift_min_rows=50, monitor_interval_seconds=0.05
    ) as client:
        assert isinstance(client, TestClient)
        examples = client.get("/model/examples").json()
        setosa = min(examples, key=lambda row: row["petal length (cm)"])
        response = client.post("/predict/batch", json=[setosa] * 200)
        assert response.status_code == 200
        time.sleep(0.2)
        report = client.get("/model/drift").json()
        assert report["prediction"]["state"] == "drift"
        assert report["prediction"]["rows"] == 200


def test_predictions_feed_the_monitor_once_per_batch(regression_artifact: Path) -> None:
    monitor, predictor = _regression_monitor(regression_artifact)
    dataplane = DataPlane(Settings.model_validate({}), predictor)
    dataplane.quality_hooks.append(lambda batch, result, ids: monitor.observe(batch.feeds, result))
    batch = RecordsCodec(predictor.schema).decode(predictor.card.examples)
    result, _ = dataplane.predict(batch, PredictionIds("r", 0))
    assert isinstance(result, Predictions)
    monitor.fold()
    assert sum(monitor.window_counts()[("prediction", "charges")]) == len(batch.row_locs)
    assert reference_shares(predictor.card.prediction_distribution)  # type: ignore[arg-type]


def _quality_counts(features: list[str]) -> dict[str, float]:
    """This process's data-quality counters of the features."""
    counts = {}
    for name in ("missing_values", "out_of_range_values", "unseen_categories"):
        for feature in features:
            value = REGISTRY.get_sample_value(
                f"modelship_feature_{name}_total", {"feature": feature}
            )
            counts[f"{name}:{feature}"] = value or 0.0
    return counts


def _served_in_pieces(
    monitor: Monitor, predictor: Predictor, records: list[dict[str, Any]]
) -> None:
    """The records served as one-row, small and large batches mixed, folded once at the end."""
    codec = RecordsCodec(predictor.schema)
    start = 0
    for size in itertools.cycle((1, 1, 3, 8, 9, 1, 40, 2)):
        if start >= len(records):
            break
        batch = codec.decode(records[start : start + size])
        monitor.observe(batch.feeds, predictor.predict(batch))
        start += size
    monitor.fold()


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_any_mix_of_batch_sizes_counts_the_same_as_one_batch(
    task: str, regression_artifact: Path, classification_artifact: Path
) -> None:
    path = regression_artifact if task == "regression" else classification_artifact
    predictor = Predictor(artifact.load(path))
    card = predictor.card
    rng = np.random.default_rng(1)
    records = []
    for i in range(400):
        record = dict(card.examples[i % len(card.examples)])
        for feature in card.features:
            if feature.numeric is not None:
                low, high = feature.numeric.min, feature.numeric.max
                record[feature.name] = float(rng.uniform(low, high + (high - low) * 0.2))
                if i % 17 == 0:
                    record[feature.name] = None  # missing
            elif i % 5 == 0:
                record[feature.name] = "never-seen"
        records.append(record)
    features = [f.name for f in card.features]
    whole = Monitor(card, Settings())
    before = _quality_counts(features)
    batch = RecordsCodec(predictor.schema).decode(records)
    whole.observe(batch.feeds, predictor.predict(batch))
    whole.fold()
    after_whole = _quality_counts(features)
    pieces = Monitor(card, Settings())
    _served_in_pieces(pieces, predictor, records)
    after_pieces = _quality_counts(features)
    counted = {k: after_whole[k] - before[k] for k in before}
    assert {k: after_pieces[k] - after_whole[k] for k in before} == counted
    assert any(counted.values())  # the records do have missing, out-of-range or unseen values
    assert pieces.window_counts() == whole.window_counts()
    assert sum(whole.window_counts()[("prediction", card.target)]) == len(records)


def test_a_csv_upload_counts_each_unseen_category_once(regression_artifact: Path) -> None:
    """The CSV codec tells the monitor when a chunk's categories are all known (it need not
    look again); the chunks with unseen ones are still counted, each cell once."""
    predictor = Predictor(artifact.load(regression_artifact))
    card = predictor.card
    categorical = next(f.name for f in card.features if f.categories)
    header = [f.name for f in card.features]
    example = card.examples[0]
    rows = []
    for i in range(12_000):
        record = dict(example)
        if 6_000 <= i < 6_007:  # all in the second of three 5,000-row chunks
            record[categorical] = f"never-seen-{i}"
        rows.append(",".join(str(record[name]) for name in header))
    before = _quality_counts([categorical])[f"unseen_categories:{categorical}"]
    with make_client(regression_artifact, monitor_interval_seconds=0.05) as client:
        answer = client.post(
            "/predict/csv",
            content="\n".join([",".join(header), *rows]).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert answer.status_code == 200, answer.text
        client.get("/model/drift")  # folds what waits
    after = _quality_counts([categorical])[f"unseen_categories:{categorical}"]
    assert after - before == 7


def test_a_large_batch_is_folded_without_waiting_for_the_interval(
    regression_artifact: Path,
) -> None:
    """What waits for the fold is bounded in values (rows x features), not rows: once that many
    wait, the thread folds at once, whatever the interval."""
    predictor = Predictor(artifact.load(regression_artifact))
    card = predictor.card
    numeric = next(f.name for f in card.features if f.numeric is not None)
    monitor = Monitor(card, Settings(monitor_interval_seconds=60))
    flush_rows = monitor_module.FLUSH_VALUES // len(card.features)
    record = {**card.examples[0], numeric: None}  # each row counts one missing value
    batch = RecordsCodec(predictor.schema).decode([record] * flush_rows)
    result = predictor.predict(batch)
    before = _quality_counts([numeric])[f"missing_values:{numeric}"]
    monitor.start()
    try:
        time.sleep(0.2)  # the thread's first wait has begun
        monitor.observe(batch.feeds, result)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _quality_counts([numeric])[f"missing_values:{numeric}"] - before == flush_rows:
                break
            time.sleep(0.05)
        assert _quality_counts([numeric])[f"missing_values:{numeric}"] - before == flush_rows
    finally:
        monitor.stop()
