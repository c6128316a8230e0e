"""End to end over real HTTP: `modelship serve` in its own process, as the README starts it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.service.server import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_fresh_checkout_trains_the_default_model_then_serves(tmp_path: Path) -> None:
    """The README's first command, from a directory with no model yet."""
    # Training first: give it time on a busy 2-core CI machine.
    # One OpenMP thread: histogram gradient boosting otherwise fights the other test worker.
    with running_server(cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}, ready_within=400) as server:
        card = httpx.get(f"{server.url}/model").json()
        assert card["name"] == "insurance-charges"
        example = httpx.get(f"{server.url}/model/examples/0").json()
        answer = httpx.post(f"{server.url}/predict", json=example)
        assert answer.status_code == 200
        assert answer.json()["prediction"] > 0
        stopped_by_sigterm = server.stop()
        log = server.process.stdout.read() if server.process.stdout else ""
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it.
    assert stopped_by_sigterm in (0, -15)
    assert "Application shutdown complete" in log
    assert "training the default model on the bundled insurance data first" in log
    assert (tmp_path / "artifacts" / "default" / "model.onnx").is_file()


def test_two_workers_serve_csv_and_batches(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    with running_server(
        "--artifact", str(regression_artifact), "--workers", "2", cwd=tmp_path
    ) as server:
        frame = pd.read_csv(insurance_csv)
        records = frame.drop(columns="charges").head(100).to_dict(orient="records")
        batch = httpx.post(f"{server.url}/predict/batch", json=records, timeout=30).json()
        csv_answer = httpx.post(
            f"{server.url}/predict/csv",
            files={"file": ("insurance.csv", insurance_csv.read_bytes(), "text/csv")},
            timeout=30,
        )
        assert csv_answer.status_code == 200
        assert csv_answer.headers["x-modelship-rows"] == "1338"
        rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
        assert rows[0]["prediction_id"] == csv_answer.headers["x-request-id"] + "#0"
        first_hundred = [float(row["predicted_charges"]) for row in rows[:100]]
        assert first_hundred == pytest.approx(
            [p["prediction"] for p in batch["predictions"]], rel=1e-6
        )
        score = httpx.post(
            f"{server.url}/score",
            content=insurance_csv.read_bytes(),
            headers={"content-type": "text/csv"},
            timeout=30,
        ).json()
        assert score["rows"] == 1338
        assert score["metrics"]["r2"] > 0.8
        assert server.stop() in (0, -15)
