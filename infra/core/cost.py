"""What a stack costs a month at its planned load, from the resources it declares.

`Ledger` sees every resource the program declares (a stack transformation, registered before the
first resource): each target's `cost.py` prices what the ledger counted (load balancers, clusters,
alarms, NAT gateways, addresses) plus the replicas the capacity plan runs at the planned load
(`infra.core.capacity`), with the list prices of `infra/offline/prices.py`. The stack exports
`monthly_cost`, `cost_per_million_predictions` (None without `modelship:targetRps`: no planned
load) and `cost_breakdown`, and logs them at `pulumi preview`.

Usage-priced lines (log ingestion, data processed by the load balancer) count what one request
costs: the figures below were measured on a one-row `POST /predict` of the insurance model and
are explained in docs/cost.md ("How the outputs are computed").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pulumi

from infra.core.capacity import CapacityPlan
from infra.offline.prices import SECONDS_PER_MONTH
from infra.settings import KEY_ACCESS_LOG, Settings

ACCESS_LOG_BYTES = 262
"""One access-log line of a one-row prediction (the service's `access_log` setting, on by
default; `modelship:accessLog` false turns it off)."""
WIRE_BYTES = 602
"""HTTP bytes of one one-row prediction: request line, headers and body, response likewise."""
GB = 1e9
GIB = 2**30


class Ledger:
    """Every resource declared after `install`, by type token, with its logical names."""

    def __init__(self) -> None:
        self.types: Counter[str] = Counter()
        self.names: defaultdict[str, list[str]] = defaultdict(list)

    def install(self) -> Ledger:
        """Start counting: every resource registered from now on (children included) passes."""
        pulumi.runtime.register_stack_transformation(self._see)
        return self

    def _see(self, args: pulumi.ResourceTransformationArgs) -> None:
        self.types[args.type_] += 1
        self.names[args.type_].append(args.name)

    def count(self, type_: str, name_contains: str = "") -> int:
        """How many resources of `type_` (whose logical name contains `name_contains`)."""
        return sum(1 for name in self.names.get(type_, []) if name_contains in name)


@dataclass(frozen=True)
class Line:
    """One priced line of the bill: what, USD a month, and how it was computed."""

    what: str
    usd: float
    basis: str


@dataclass(frozen=True)
class Bill:
    """A stack's monthly cost at its planned load, by line, with what it leaves out."""

    lines: tuple[Line, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    def per_million(self, target_rps: float | None) -> float | None:
        """USD per million predictions if the planned load runs all month; None without one."""
        if target_rps is None or target_rps <= 0:
            return None
        return self.total / (target_rps * SECONDS_PER_MONTH / 1e6)


def access_log_note(settings: Settings, logs: float) -> list[str]:
    """What the access log costs of the bill, and the key that turns it off (or that it is)."""
    if not settings.container.access_log:
        return [f"{KEY_ACCESS_LOG} is false: no access-log line per request is written or priced"]
    if logs <= 0:
        return []
    return [
        f"the access log (one line per request) is ${logs:,.2f} of this a month; "
        f"{KEY_ACCESS_LOG}=false turns it off (the service's other log lines stay)"
    ]


def logged_requests(settings: Settings, plan: CapacityPlan) -> float:
    """Requests a month that write an access-log line (none with `modelship:accessLog` false)."""
    return requests_per_month(plan) if settings.container.access_log else 0.0


def requests_per_month(plan: CapacityPlan) -> float:
    """Requests in a month at the planned load (0 without one, or parked at zero)."""
    if plan.target_rps is None or plan.planned_replicas == 0:
        return 0.0
    return plan.target_rps * SECONDS_PER_MONTH


def bill(lines: Iterable[Line], notes: Iterable[str] = ()) -> Bill:
    """A bill of the lines that cost something (a zero line is noise in the output)."""
    return Bill(tuple(line for line in lines if line.usd > 0), tuple(notes))


def outputs(plan: CapacityPlan, priced: Bill) -> dict[str, Any]:
    """The `capacity`, `monthly_cost`, `cost_per_million_predictions` and `cost_breakdown`
    outputs every stack exports."""
    per_million = priced.per_million(plan.target_rps if plan.planned_replicas else None)
    return {
        "capacity": plan.output(),
        "monthly_cost": round(priced.total, 2),
        "cost_per_million_predictions": None if per_million is None else round(per_million, 4),
        "cost_breakdown": {
            "lines": {line.what: round(line.usd, 2) for line in priced.lines},
            "basis": {line.what: line.basis for line in priced.lines},
            "notes": list(priced.notes),
        },
    }


def log(plan: CapacityPlan, priced: Bill) -> None:
    """The plan and its price as `pulumi preview` prints them (info lines of the stack)."""
    rate = plan.rps_per_replica
    load = (
        "no planned load (set modelship:targetRps)"
        if plan.target_rps is None
        else (f"planned load {plan.target_rps:g} requests/s")
    )
    pulumi.log.info(
        f"capacity: {load}; "
        + (
            f"{rate:g} requests/s per replica measured, planned at "
            f"{plan.planned_rps_per_replica:g} (headroom {plan.headroom:g}); "
            if rate is not None
            else f"rate {plan.source}; "
        )
        + f"replicas {plan.min_replicas}-{plan.max_replicas} ({plan.planned_replicas} at the "
        f"planned load), CPU target {plan.cpu_target_percent}%"
        + (f"; derived: {', '.join(plan.derived)}" if plan.derived else "")
    )
    per_million = priced.per_million(plan.target_rps if plan.planned_replicas else None)
    pulumi.log.info(
        f"cost: ${priced.total:,.2f} a month"
        + (f", ${per_million:,.4f} per million predictions" if per_million is not None else "")
        + " ("
        + ", ".join(f"{line.what} ${line.usd:,.2f}" for line in priced.lines)
        + ")"
    )
