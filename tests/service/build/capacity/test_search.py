"""The capacity search against a replica whose answer to each rate is known: the result is the
capacity within the search's resolution, from below, decided by a repeated full step, and the
search fits its time budget."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import pytest

from modelship.build.capacity import run as capacity
from modelship.build.capacity.cgroup import Limits
from modelship.build.capacity.run import RESOLUTION, Plan, find_capacity
from modelship.errors import ModelshipError


class _Group:
    version = 1

    def reset_memory_peak(self) -> None:
        pass

    def cpu_seconds(self) -> float:
        return 0.0

    def memory_peak_bytes(self) -> int:
        return 64 * 2**20

    def read_limits(self) -> Limits:
        return Limits(500, 512 * 2**20)


class _Server:
    cgroup = _Group()

    def check_alive(self) -> None:
        pass


class _Replica:
    """A generator whose replica holds p99 at any rate up to `capacity`; `lucky` rates pass
    once above it (a quiet moment), then fail like the rest."""

    def __init__(
        self, capacity: float, lucky: tuple[float, ...] = (), unlucky: tuple[float, ...] = ()
    ) -> None:
        self.capacity = capacity
        self.lucky = set(lucky)
        self.unlucky = set(unlucky)  # fail once below it (the machine was busy for a moment)
        self.steps: list[tuple[float, float]] = []

    def step(self, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
        self.steps.append((rate, seconds))
        holds = (rate <= self.capacity or rate in self.lucky) and rate not in self.unlucky
        self.lucky.discard(rate)
        self.unlucky.discard(rate)
        return {
            "errors": {} if holds else {"HTTP 503": 10},
            "p50_ms": 2.0,
            "p99_ms": 20.0 if holds else 300.0,
            "lag_p99_ms": 0.5,
            "sent_seconds": seconds,
            "ok": int(rate * seconds),
        }


def _result(replica: _Replica, step_seconds: float = 4.0) -> capacity.Result:
    plan = Plan(limits=Limits(500, 512 * 2**20), p99_target_ms=100.0, step_seconds=step_seconds)
    return find_capacity(
        cast(capacity.ConfinedServer, _Server()),
        replica,
        plan,
        1,
        lambda line: None,
    )


def _search(replica: _Replica, step_seconds: float = 4.0) -> float:
    return _result(replica, step_seconds).point.max_rps


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_time = SimpleNamespace(monotonic=time.monotonic, sleep=lambda seconds: None)
    monkeypatch.setattr(capacity, "time", fake_time)


@pytest.mark.parametrize("true_rate", [333.0, 1000.0, 1650.0, 3100.0])
def test_the_rate_found_is_the_capacity_within_the_resolution(true_rate: float) -> None:
    replica = _Replica(true_rate)
    found = _search(replica)
    assert true_rate / (1 + RESOLUTION) ** 2 <= found <= true_rate
    full = [rate for rate, seconds in replica.steps if seconds == 4.0]
    assert Counter(full)[found] == 2  # decided by the same rate passing two full steps
    assert sum(seconds for _, seconds in replica.steps) <= 50  # plus a second per failed step


def test_a_rate_that_passed_once_by_chance_is_not_the_result() -> None:
    replica = _Replica(1000.0, lucky=(1050.0, 1100.0, 1025.0, 1012.5))
    assert _search(replica) <= 1000.0


def test_a_search_misled_high_by_a_quick_moment_walks_back_down_to_a_result() -> None:
    """The steps of a real run (insurance at 1/1Gi): 3,200 and 4,000 passed once each while the
    machine was quick, then failed, as did every rate between; the search still ends at the
    capacity instead of running out of steps."""
    replica = _Replica(3000.0, lucky=(3200.0, 4000.0))
    result = _result(replica)
    assert 3000.0 / (1 + RESOLUTION) ** 2 <= result.point.max_rps <= 3000.0
    assert len(replica.steps) > 20  # (the search's former bound, which ended it without a result)
    # ...and says that the machine's speed moved: 4,000 passed a full step, 33% above
    assert result.highest_full_pass_rps == 4000.0
    assert result.unsteady
    assert result.as_json()["unsteady"] is True


def test_a_steady_search_is_not_flagged() -> None:
    result = _result(_Replica(1650.0, lucky=(1700.0,)))  # a pass 3% above: within resolution
    assert not result.unsteady
    assert result.as_json()["highest_full_pass_rps"] <= 1700.0


def test_a_hiccup_in_a_short_step_does_not_bound_the_search() -> None:
    replica = _Replica(1000.0, unlucky=(50.0,))
    assert _search(replica) >= 1000.0 / (1 + RESOLUTION) ** 2


def test_the_step_of_training_stays_cheap() -> None:
    replica = _Replica(1200.0)
    _search(replica, step_seconds=2.0)
    assert sum(seconds for _, seconds in replica.steps) <= 25


class _Tiring(_Replica):
    """A replica that serves less with every step (its state grows as it serves): a rate that
    passed early fails later."""

    def step(self, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
        self.capacity *= 0.8
        return super().step(rate, seconds, timeout)


def test_a_replica_that_serves_less_as_it_goes_is_refused_with_the_reason() -> None:
    with pytest.raises(ModelshipError, match="served less as the search went on"):
        _search(_Tiring(capacity=5_000))


def test_a_size_that_cannot_serve_the_target_says_so() -> None:
    with pytest.raises(ModelshipError, match="even when idle"):
        _search(_Replica(capacity=0.0001))
