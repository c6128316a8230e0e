"""docs/capacity.md's generated block is what `tests/infra/capacity_doc.py` makes from
docs/capacity-points.json and the stacks' own plans: a changed measurement, price, default or
planning rule fails here until the doc is regenerated; and the file `bench/capacity.py` writes is
the file the generator reads."""

from __future__ import annotations

import json
from pathlib import Path

from bench.capacity import save_points

from .capacity_doc import (
    BEGIN,
    CAPACITY_DOC,
    END,
    POINTS,
    UPDATE,
    fargate_memory,
    load_points,
    measured_artifacts,
    render,
)
from .cost_doc import update


def test_the_committed_capacity_doc_is_the_generated_one(
    regression_artifact: Path, tmp_path: Path
) -> None:
    block = render(measured_artifacts(regression_artifact, tmp_path))
    text = CAPACITY_DOC.read_text()
    assert update(text, block, BEGIN, END) == text, (
        f"docs/capacity.md is out of date; run: {UPDATE}"
    )


def test_the_doc_prices_both_models_at_both_sizes_and_loads() -> None:
    measured = load_points()
    assert {(m.model, m.size) for m in measured} == {
        (model, size) for model in ("insurance", "letters") for size in ("500m/512Mi", "1/1Gi")
    }
    # Fargate has no task of 500m/512Mi or 1/1Gi: the smallest with at least that memory.
    assert [fargate_memory(m.point) for m in measured[:2]] == ["1024Mi", "2048Mi"]


def test_a_new_measurement_replaces_its_entry_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "points.json"
    path.write_text(POINTS.read_text())
    before = json.loads(POINTS.read_text())["measurements"]
    fresh = {
        **before[1],
        "runs": [2000.0, 2100.0, 2200.0],
        "measured_at": "2027-01-01T00:00:00+00:00",
    }
    fresh["point"] = {**fresh["point"], "max_rps": 2100.0}
    added = {**before[0], "model": "wide"}
    save_points(path, [fresh, added])
    after = load_points(path)
    assert [m.model for m in after] == [m["model"] for m in before] + ["wide"]
    assert (after[1].point.max_rps, after[1].measured_at) == (2100.0, "2027-01-01T00:00:00+00:00")
    assert after[0].point == load_points()[0].point
