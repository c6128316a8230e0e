"""The feedback join at a full window: what its writer pays per answer, and what a label finds,
after several windows' worth of single-record answers (the traffic of a busy replica)."""

from __future__ import annotations

import os
import sqlite3
import statistics
from pathlib import Path

import numpy as np

from modelship.model.codecs.base import ModelInput, Warnings
from modelship.model.predictor import Predictions
from modelship.serving.feedback import DATABASE, Feedback, PredictionIds
from tests.service.conftest import make_client

WINDOW = 50_000
PER_FLUSH = 1_000  # answers a second of a 1,000 req/s replica, the thread's flush period


def _answer(feedback: Feedback, version: str, count: int) -> list[str]:
    """`count` single-record answers with generated ids (as `modelship serve` makes them)."""
    batch = ModelInput(feeds={}, rows=1, warnings=Warnings(), row_locs=[])
    ids = [os.urandom(16).hex() for _ in range(count)]
    for n, request_id in enumerate(ids):
        result = Predictions(values=np.array([1000.0 + n], dtype=np.float32))
        feedback.observe(version, batch, result, PredictionIds(request_id))
    return ids


def _pages_written(feedback: Feedback) -> int:
    """Pages the last transactions wrote to the SQLite log since `_log_reset`."""
    frames: int = feedback._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    return frames


def _log_reset(feedback: Feedback) -> None:
    feedback._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_full_window_costs_the_writer_about_what_a_filling_one_does(
    regression_artifact: Path,
) -> None:
    """Pages written to SQLite's log by each flush and sweep (4 KiB each, copied, checksummed
    and later checkpointed into the file: what the writer thread's CPU follows) stay flat from
    the first window, while the join fills, to the third, where it is full, the oldest answers
    are forgotten and their ids dropped (medians: about 70 and 100 pages). With an index of
    every id in the window and a second table of the forgotten ones they grew fivefold (330
    and 1,700 pages), and the replica's CPU per request with them (docs/capacity.md). Then a
    label still finds what it should: the latest answer joins, one forgotten within the last
    two windows is expired, the first one is unknown."""
    with make_client(
        regression_artifact, feedback_window_rows=WINDOW, feedback_flush_seconds=60
    ) as client:
        feedback: Feedback = client.app.state.dataplane.feedback  # type: ignore[attr-defined]
        (version,) = feedback.cards
        feedback._db.execute("PRAGMA wal_autocheckpoint = 0")  # the log holds every page
        pages: list[int] = []
        ids: list[str] = []
        for _ in range(3 * WINDOW // PER_FLUSH):
            ids += _answer(feedback, version, PER_FLUSH)
            _log_reset(feedback)
            feedback.flush(sweep=True)
            pages.append(_pages_written(feedback))
        filling = statistics.median(pages[: WINDOW // PER_FLUSH])
        full = statistics.median(pages[-WINDOW // PER_FLUSH :])
        assert full <= 2 * filling, (filling, full, pages)
        assert feedback.remembered() == WINDOW

        report = client.post(
            "/feedback",
            json=[
                {"id": ids[-1], "label": 1.0},
                {"id": ids[-WINDOW - 1], "label": 1.0},  # just past the window
                {"id": ids[-int(1.8 * WINDOW)], "label": 1.0},
                {"id": ids[0], "label": 1.0},  # three windows ago: its id is gone
            ],
        ).json()
        outcomes = [p["outcome"] for p in report["problems"]]
        assert (report["joined"], outcomes) == (1, ["expired", "expired", "unknown"]), report


def test_a_join_file_of_an_older_schema_is_started_afresh(
    regression_artifact: Path, tmp_path: Path
) -> None:
    """A state directory kept across an upgrade (MODELSHIP_STATE_DIR) holds the join in the
    previous layout: the server starts, and labels join its new answers."""
    old = sqlite3.connect(tmp_path / DATABASE)
    old.executescript(
        "CREATE TABLE answers (request_id TEXT NOT NULL, first INTEGER NOT NULL, "
        "rows INTEGER NOT NULL, version TEXT NOT NULL, at REAL NOT NULL, upto INTEGER NOT NULL, "
        "dtype TEXT NOT NULL, numbers BLOB NOT NULL, labels BLOB, PRIMARY KEY (request_id, first));"
        "CREATE TABLE answered (total INTEGER NOT NULL); INSERT INTO answered VALUES (7);"
    )
    old.close()
    with make_client(regression_artifact, state_dir=tmp_path) as client:
        example = client.get("/model/examples/0").json()
        client.post("/predict", json=example, headers={"X-Request-Id": "after-upgrade"})
        report = client.post("/feedback", json={"id": "after-upgrade", "label": 1.0}).json()
        assert report["joined"] == 1, report
