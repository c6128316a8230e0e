"""A rollout end to end: `modelship serve --workers 2 --candidate B`, over real sockets, judged by
`modelship rollout status|wait` run as the deploy workflow runs them (subprocesses)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from modelship.model import artifact
from tests.service.server import Server, running_server

pytestmark = pytest.mark.slow
MIN_REQUESTS = 60
SETTINGS = {
    "MODELSHIP_ACCESS_LOG": "false",
    "MODELSHIP_ROLLOUT_MIN_REQUESTS": str(MIN_REQUESTS),
    "MODELSHIP_ROLLOUT_SYNC_SECONDS": "0.2",
}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.drop(columns="charges").to_dict("records")  # type: ignore[return-value]


def _predict(server: Server, record: dict[str, Any], key: str) -> httpx.Response:
    # A new connection per request: both workers answer some.
    answer = httpx.post(
        f"{server.url}/predict", json=record, headers={"X-Modelship-Route-Key": key}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelship", "rollout", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _candidate_answers(server: Server) -> float:
    """modelship_rollout_answers_total of the candidate, summed over the workers."""
    metrics = httpx.get(f"{server.url}/metrics").text
    version = httpx.get(f"{server.url}/rollout").json()["candidate"]["version"]
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("modelship_rollout_answers_total") and version in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _workers_seen(server: Server) -> set[int]:
    return {httpx.get(f"{server.url}/rollout").json()["worker_pid"] for _ in range(40)}


def test_a_shuffled_target_candidate_is_aborted_in_every_worker(
    regression_artifact: Path,
    shuffled_candidate_artifact: Path,
    insurance_frame: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """Canary 50%, two workers: abort within a bounded number of requests; the CLI says abort
    (exit 1) with the failed gate; after one sync interval no worker sends the candidate any
    request; one log line for the whole server names the gate."""
    records = _records(insurance_frame)
    primary = artifact.load(regression_artifact).card.version
    args = ["--artifact", str(regression_artifact), "--workers", "2"]
    args += ["--candidate", str(shuffled_candidate_artifact), "--candidate-traffic", "50"]
    with running_server(*args, cwd=tmp_path, env=SETTINGS) as server:
        assert len(_workers_seen(server)) == 2
        baking = _cli("status", server.url, cwd=tmp_path)
        assert baking.returncode == 3, baking
        assert "verdict: baking" in baking.stdout
        sent = 0
        while httpx.get(f"{server.url}/rollout").json()["verdict"] != "abort":
            for _ in range(10):
                _predict(server, records[sent % len(records)], f"k{sent}")
                sent += 1
            assert sent <= 10 * MIN_REQUESTS, "no abort"
        # The min sample of compared requests, plus what both workers answer in a sync or two.
        assert sent <= 4 * MIN_REQUESTS, sent
        status = _cli("status", server.url, cwd=tmp_path)
        assert status.returncode == 1, status
        assert "verdict: abort" in status.stdout
        assert "fail" in status.stdout and "divergence" in status.stdout
        time.sleep(1.0)  # past MODELSHIP_ROLLOUT_SYNC_SECONDS in every worker
        before = _candidate_answers(server)
        after = [_predict(server, records[i], f"after-{i}") for i in range(200)]
        assert {a.json()["model_version"] for a in after} == {primary}
        assert {a.headers["X-Modelship-Model-Version"] for a in after} == {primary}
        assert _candidate_answers(server) == before
        assert len(_workers_seen(server)) == 2  # both workers were asked, and both held
        server.stop()
        output = server.process.stdout.read() if server.process.stdout else ""
    aborts = [line for line in output.splitlines() if "rollout: abort" in line]
    assert len(aborts) == 1, aborts
    assert "gate divergence failed" in aborts[0]


def test_a_good_candidate_is_promoted_and_wait_returns_0(
    regression_artifact: Path,
    good_candidate_artifact: Path,
    insurance_frame: pd.DataFrame,
    tmp_path: Path,
) -> None:
    records = _records(insurance_frame)
    args = ["--artifact", str(regression_artifact), "--workers", "2"]
    args += ["--candidate", str(good_candidate_artifact), "--candidate-traffic", "10"]
    with running_server(*args, cwd=tmp_path, env=SETTINGS) as server:
        timed_out = _cli("wait", server.url, "--timeout", "1s", "--interval", "0.2", cwd=tmp_path)
        assert timed_out.returncode == 3, timed_out
        assert "timed out after 1 s" in timed_out.stderr
        for i in range(3 * MIN_REQUESTS):
            _predict(server, records[i % len(records)], f"k{i}")
        promoted = _cli("wait", server.url, "--timeout", "60", "--interval", "0.2", cwd=tmp_path)
        assert promoted.returncode == 0, promoted
        assert promoted.stdout.startswith("verdict: promote")


def test_shadow_answers_equal_a_primary_only_server(
    regression_artifact: Path,
    shuffled_candidate_artifact: Path,
    insurance_frame: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """Shadow, two workers, a bad candidate: 300 answers identical to a primary-only server's
    (the prediction id aside: it is the request id)."""
    records = _records(insurance_frame)[:300]
    shadow = ["--candidate", str(shuffled_candidate_artifact), "--candidate-traffic", "shadow"]
    base = ["--artifact", str(regression_artifact), "--workers", "2"]
    with (
        running_server(*base, *shadow, cwd=tmp_path, env=SETTINGS) as ours,
        running_server(*base, cwd=tmp_path, env=SETTINGS) as theirs,
    ):
        for i, record in enumerate(records):
            pair = [
                httpx.post(f"{s.url}/predict", json=record, headers={"X-Request-Id": f"r{i}"})
                for s in (ours, theirs)
            ]
            assert pair[0].json() == pair[1].json()
        assert httpx.get(f"{ours.url}/rollout").json()["verdict"] in ("baking", "abort")
