"""Request capture: sampled rows and predictions in the model store under captures/<version>/,
over real HTTP against an S3 server on 127.0.0.1, and what happens when the store is down."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import numpy as np
import pandas as pd
import pytest

from modelship.contracts.settings import Settings, load_settings
from modelship.errors import ModelshipError
from modelship.model import artifact, store
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.serving.monitoring import capture as capture_module
from modelship.serving.monitoring.cloudwatch import CloudWatchEmitter
from modelship.transport.http.app import create_app
from tests.service.live import serve_in_thread
from tests.service.object_stores import (
    BUCKET,
    gcs_server,
    lose_first_answer,
    s3_client,
    s3_server,
)
from tests.service.server import capturing_server, free_port
from tests.service.traffic import records, scrape, send_every_transport

DOWN_BUCKET = "modelship-test-captures-down"
FEATURES = ["age", "sex", "bmi", "children", "smoker", "region"]


def _captured(
    env: dict[str, str], prefix: str, bucket: str = BUCKET
) -> list[tuple[str, pd.DataFrame]]:
    client = s3_client(env)
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [
        (
            item["Key"],
            pd.read_csv(
                io.BytesIO(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()),
                keep_default_na=False,
            ),
        )
        for item in listing
    ]


def _wait_for(condition: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_every_transport_is_captured_to_s3_in_batches(
    regression_artifact: Path, insurance_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """Two workers, rate 1: every row sent (JSON, batch, CSV, V2) lands once in the bucket,
    as CSV objects of at most the batch size, with the prediction each client got."""
    version = artifact.load(regression_artifact).card.version
    rows = insurance_frame.drop(columns="charges").sample(200, random_state=3)
    rows.loc[rows.index[0], "bmi"] = np.nan  # a missing value: captured as an empty cell
    with s3_server() as env:
        with capturing_server(
            regression_artifact,
            f"s3://{BUCKET}/prod",
            env,
            tmp_path,
            capture_batch_rows="40",
            capture_interval_seconds="0.5",
        ) as server:
            nulls = [{k: None if pd.isna(v) else v for k, v in r.items()} for r in records(rows)]
            expected = httpx.post(f"{server.url}/predict/batch", json=nulls, timeout=30)
            first_prediction = expected.json()["predictions"][0]["prediction"]
            first_id = expected.json()["predictions"][0]["id"]
            send_every_transport(server.url, rows.fillna({"bmi": rows["bmi"].median()}))
            sent = 2 * len(rows)
            prefix = f"prod/captures/{version}/"
            _wait_for(
                lambda: sum(len(frame) for _, frame in _captured(env, prefix)) >= sent,
                "every row in the bucket",
            )
            metrics = scrape(server.url)
            assert server.stop() == 0
        objects = _captured(env, prefix)

    assert all(len(frame) <= 40 for _, frame in objects)
    assert len({key for key, _ in objects}) == len(objects)
    frame = pd.concat([frame for _, frame in objects], ignore_index=True)
    assert list(frame.columns) == [*FEATURES, "predicted_charges", "prediction_id", "model_version"]
    assert set(frame["model_version"]) == {version}
    assert frame["prediction_id"].is_unique
    assert len(frame) == sent
    assert metrics[("modelship_capture_rows_total", ())] == sent
    assert metrics[("modelship_capture_dropped_rows_total", (("reason", "buffer_full"),))] == 0
    # The batch request's rows, as the model saw them, with the predictions the client got.
    first = rows.iloc[0]
    mine = frame[(frame["age"] == first["age"]) & (frame["bmi"] == "")]
    assert len(mine) == 1
    assert float(mine["predicted_charges"].iloc[0]) == pytest.approx(first_prediction, rel=1e-6)
    assert mine["prediction_id"].iloc[0] == first_id
    assert sorted(frame["region"].unique()) == sorted(rows["region"].unique())


@pytest.fixture
def down_store(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials and an S3 endpoint on a free port of 127.0.0.1 where nothing listens yet."""
    port = free_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.mark.slow
def test_an_unreachable_store_never_blocks_or_fails_predictions(
    regression_artifact: Path,
    insurance_frame: pd.DataFrame,
    down_store: dict[str, str],
) -> None:
    """The store refuses connections: every prediction answers 200, captured rows stay within
    the buffer, the rest are dropped and counted; once the store is back, the buffer is
    written."""
    settings = Settings(
        capture_rate=1.0,
        capture_uri=f"s3://{DOWN_BUCKET}",
        capture_batch_rows=10,
        capture_buffer_rows=50,
        capture_interval_seconds=0.2,
        access_log=False,
    )
    app = create_app(build_serving(settings, Predictor(artifact.load(regression_artifact))))
    capture = app.state.capture
    rows = records(insurance_frame.drop(columns="charges").head(150))
    # What fargate's capture alarm selects: the failures since the last CloudWatch line.
    lines: list[bytes] = []
    emitter = CloudWatchEmitter(app.state.monitor, "capture-test", 60, None, lines.append)
    emitter.emit()
    with serve_in_thread(app) as address, httpx.Client(base_url=f"http://{address}") as client:
        before = scrape(client.base_url.__str__())
        for record in rows:
            assert client.post("/predict", json=record, timeout=5).status_code == 200
        _wait_for(lambda: capture.failing, "a failed upload")
        assert capture.buffered <= 50
        after = scrape(str(client.base_url))
        dropped = ("modelship_capture_dropped_rows_total", (("reason", "buffer_full"),))
        assert after[dropped] - before.get(dropped, 0) == len(rows) - 50
        errors = ("modelship_capture_upload_errors_total", ())
        assert after[errors] > before.get(errors, 0)
        emitter.emit()
        service_lines = [json.loads(line) for line in lines if b'"FeaturesInDrift"' in line]
        assert service_lines[-1]["CaptureFailures"] >= len(rows) - 50 + 1  # dropped + failed

        # The store comes back on that port: what was buffered is written.
        from moto.server import ThreadedMotoServer

        port = int(down_store["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            # No reset (moto's state is per process: it would race with the uploads); a bucket
            # of this test's own instead.
            s3_client(down_store).create_bucket(Bucket=DOWN_BUCKET)
            _wait_for(lambda: capture.buffered == 0, "the buffer written", seconds=30)
            written = _captured(down_store, "captures/", DOWN_BUCKET)
            assert sum(len(frame) for _, frame in written) == 50
        finally:
            server.stop()


def _dropped(reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("modelship_capture_dropped_rows_total", {"reason": reason})
    return value or 0.0


def _capture_to(uri: str, artifact_path: Path, backend: store.Backend | None = None) -> Any:
    """An app capturing every row to `uri` in objects of 5 rows, through `backend` if given."""
    settings = Settings(
        capture_rate=1.0,
        capture_uri=uri,
        capture_batch_rows=5,
        capture_interval_seconds=0.2,
        access_log=False,
    )
    app = create_app(build_serving(settings, Predictor(artifact.load(artifact_path))))
    app.state.capture._backend = backend or store.backend(app.state.capture.location)
    return app


def _predict_and_drain(app: Any, frame: pd.DataFrame, rows: int = 15) -> None:
    """Serve `rows` rows one by one, then wait until the capture holds none of them."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for record in records(frame.drop(columns="charges").head(rows)):
            assert client.post("/predict", json=record).status_code == 200
        _wait_for(lambda: app.state.capture.buffered == 0, "the capture buffer drained")


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_lost_answer_does_not_stop_capture(
    scheme: str,
    regression_artifact: Path,
    insurance_frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first capture object reaches the store but its answer is lost, so the SDK's retry
    fails the create-only precondition: that object is this upload, the next ones follow."""
    with s3_server() if scheme == "s3" else gcs_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = _capture_to(f"{scheme}://{BUCKET}", regression_artifact)
        backend = app.state.capture._backend
        with lose_first_answer(backend) as lost:
            _predict_and_drain(app, insurance_frame)
        assert lost and not app.state.capture.failing
        keys = backend.keys("captures/")
        assert len(keys) == 3
        assert sum(len(pd.read_csv(io.BytesIO(backend.read(k)))) for k in keys) == 15


def test_an_object_the_store_keeps_refusing_is_dropped_and_counted(
    regression_artifact: Path,
    insurance_frame: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One object is refused on every attempt: after MAX_UPLOAD_ATTEMPTS it is dropped, its
    rows counted and logged, and the objects behind it are written."""
    monkeypatch.setattr(capture_module, "FIRST_RETRY_SECONDS", 0.01)

    class RefusesFirstObject(store.LocalBackend):
        refused: str | None = None

        def write_once(self, key: str, data: bytes) -> None:
            if self.refused in (None, key):
                self.refused = key
                raise store.DeniedError(key)
            super().write_once(key, data)

    backend = RefusesFirstObject(tmp_path)
    app = _capture_to(f"file://{tmp_path}", regression_artifact, backend)
    before = _dropped("upload_failed")
    _predict_and_drain(app, insurance_frame)
    assert _dropped("upload_failed") - before == 5
    assert sum(len(pd.read_csv(f)) for f in tmp_path.rglob("*.csv")) == 10
    assert backend.refused is not None
    assert f"dropped {app.state.capture.location.uri_of(backend.refused)} (5 rows)" in caplog.text


def test_the_rate_samples_rows_of_every_batch(
    regression_artifact: Path, insurance_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """Rate 0.25 on 2,000 rows in batches: about a quarter is written, to a directory store."""
    settings = Settings(capture_rate=0.25, capture_uri=f"file://{tmp_path}")
    app = create_app(build_serving(settings, Predictor(artifact.load(regression_artifact))))
    rows = records(insurance_frame.drop(columns="charges").sample(2000, replace=True))
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for start in range(0, len(rows), 500):
            response = client.post("/predict/batch", json=rows[start : start + 500])
            assert response.status_code == 200
    # Shutdown wrote what was left: every captured row is on disk.
    files = sorted(tmp_path.rglob("*.csv"))
    version = app.state.dataplane.card.version
    assert files and all(f.relative_to(tmp_path).parts[:2] == ("captures", version) for f in files)
    captured = sum(len(pd.read_csv(f)) for f in files)
    assert 400 <= captured <= 600  # binomial(2000, 0.25): 500 ± 5 standard deviations


def test_capture_settings_are_checked(regression_artifact: Path) -> None:
    with pytest.raises(ModelshipError, match="MODELSHIP_CAPTURE_URI"):
        load_settings(capture_rate=0.1)
    with pytest.raises(ModelshipError, match="MODELSHIP_CAPTURE_RATE"):
        load_settings(capture_rate=1.5, capture_uri="s3://b")
    with (
        mock.patch.dict(os.environ, {"MODELSHIP_CAPTURE_RATE": "often"}),
        pytest.raises(ModelshipError, match="MODELSHIP_CAPTURE_RATE = 'often'"),
    ):
        load_settings()
    predictor = Predictor(artifact.load(regression_artifact))
    with pytest.raises(ModelshipError, match="ftp://bucket"):
        create_app(build_serving(Settings(capture_rate=0.1, capture_uri="ftp://bucket"), predictor))
    with pytest.raises(ModelshipError, match="must be absolute"):
        create_app(build_serving(Settings(capture_rate=0.1, capture_uri="relative/dir"), predictor))
