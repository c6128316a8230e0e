"""What a measurement leaves in the card and the report page."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelship.build.capacity import run as capacity
from modelship.build.capacity.run import cpu_model, merged
from modelship.build.report.page import CAPACITY_END, CAPACITY_START, capacity_box, with_capacity
from modelship.contracts.capacity import Capacity, CapacityPoint


def _point(cpu: str, rps: float, rows: int = 1) -> CapacityPoint:
    return CapacityPoint(
        cpu=cpu,
        memory="512Mi",
        workers=1,
        rows_per_request=rows,
        p99_target_ms=100,
        max_rps=rps,
        p99_ms=20,
        cpu_ms_per_request=0.5,
        memory_mib=70,
    )


def test_a_new_point_replaces_the_same_size_and_keeps_the_others() -> None:
    old = Capacity(
        measured_at="2026-01-01T00:00:00+00:00",
        cpu_model=cpu_model(),
        points=[_point("500m", 100), _point("1", 300), _point("500m", 20, rows=100)],
    )
    new = merged(old, [_point("500m", 150)])
    assert [(p.cpu, p.rows_per_request, p.max_rps) for p in new.points] == [
        ("1", 1, 300),
        ("500m", 100, 20),
        ("500m", 1, 150),
    ]
    assert new.measured_at > old.measured_at


def test_points_measured_on_another_cpu_are_dropped() -> None:
    old = Capacity(measured_at="2026-01-01", cpu_model="another CPU", points=[_point("1", 300)])
    new = merged(old, [_point("500m", 150)])
    assert new.cpu_model == cpu_model() and [p.cpu for p in new.points] == ["500m"]


def test_the_report_page_keeps_one_capacity_box() -> None:
    page = f"<section><p>before</p>{capacity_box(None)}<p>after</p></section>"
    assert "not measured" in page
    capacity = Capacity(measured_at="2026-12-07", cpu_model="X", points=[_point("500m", 150)])
    once = with_capacity(page, capacity)
    twice = with_capacity(once, capacity.model_copy(update={"points": [_point("500m", 170)]}))
    assert twice.count(CAPACITY_START) == 1 and twice.count(CAPACITY_END) == 1
    assert "170 req/s" in twice and "150 req/s" not in twice and "not measured" not in twice
    assert twice.startswith("<section><p>before</p>") and twice.endswith("<p>after</p></section>")


@pytest.mark.parametrize(("highest", "flagged"), [(1000.0, False), (1300.0, True)])
def test_the_step_of_training_says_when_the_machine_moved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, highest: float, flagged: bool
) -> None:
    """Training's one line about capacity carries the same warning as `modelship capacity`."""
    result = capacity.Result(point=_point("500m", 1000.0), highest_full_pass_rps=highest)
    monkeypatch.setattr(capacity, "can_confine", lambda: None)
    monkeypatch.setattr(capacity, "measure", lambda *args: [result])
    monkeypatch.setattr(capacity, "write_to_card", lambda *args: None)
    said: list[str] = []
    capacity.measure_step(tmp_path, said.append)
    warned = [line for line in said if "the machine's speed moved" in line]
    assert bool(warned) is flagged
    if flagged:
        assert "a full step passed at 1300 requests/s" in warned[0]
