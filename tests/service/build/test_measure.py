"""The measured footprint: a fresh serving process loads the artifact and reports its costs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelship.build.measure import FootprintError, measure_footprint, synthetic_rows
from modelship.contracts.card import ModelCard
from modelship.contracts.footprint import BATCH_ROWS, Footprint
from modelship.model import artifact


def test_measures_size_latency_and_memory_of_a_serving_process(regression_artifact: Path) -> None:
    footprint = measure_footprint(regression_artifact)
    assert footprint.model_bytes == (regression_artifact / artifact.ONNX_FILE).stat().st_size
    assert 0 < footprint.latency_row_ms < footprint.latency_batch_ms
    # A worker holds Python, numpy, onnxruntime and FastAPI: tens of MB at least, and this small
    # model adds little; far below the 512Mi of the smallest default container.
    assert 40 < footprint.serving_rss_mb < 400
    assert "MB per worker" in footprint.summary()


def test_memory_is_the_serving_process_own_not_its_parents(regression_artifact: Path) -> None:
    # Linux keeps ru_maxrss across exec: measured naively, a child of a large training process
    # reports the parent's size. Make this process large and check the child does not.
    ballast = b"x" * (600 * 2**20)
    footprint = measure_footprint(regression_artifact)
    assert footprint.serving_rss_mb < 400
    del ballast


def test_a_model_that_cannot_be_served_fails_the_measurement(
    regression_artifact: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(regression_artifact, broken)
    (broken / artifact.ONNX_FILE).write_bytes(b"not onnx")
    with pytest.raises(FootprintError, match=r"cannot serve .* to measure it: .*does not match"):
        measure_footprint(broken)


def test_synthetic_rows_cover_the_training_ranges(regression_artifact: Path) -> None:
    card = artifact.load(regression_artifact).card
    rows = synthetic_rows(card, BATCH_ROWS)
    assert len(rows) == BATCH_ROWS
    ages = [row["age"] for row in rows]
    assert 18 <= min(ages) < 25 and 57 < max(ages) <= 64
    assert {row["region"] for row in rows} == set(card.feature("region").categories or [])


def test_card_keeps_the_footprint_and_older_cards_still_load(
    regression_artifact: Path, tmp_path: Path
) -> None:
    card = artifact.load(regression_artifact).card
    measured = Footprint(
        model_bytes=card.artifact.onnx_bytes,
        latency_row_ms=0.05,
        latency_batch_ms=4.5,
        serving_rss_mb=97.0,
    )
    with_footprint = card.model_copy(update={"footprint": measured})
    again = ModelCard.model_validate_json(with_footprint.model_dump_json())
    assert again.footprint == measured
    older = json.loads(card.model_dump_json())
    older.pop("footprint", None)
    assert ModelCard.model_validate(older).footprint is None
