"""The local stack costs no cloud money: Docker on the user's own machine."""

from __future__ import annotations

from infra.core.capacity import CapacityPlan
from infra.core.cost import Bill, Ledger, bill
from infra.settings import Settings
from infra.targets.local.config import LocalSettings


def local_bill(
    settings: Settings, local: LocalSettings, plan: CapacityPlan, ledger: Ledger
) -> Bill:
    """An empty bill: the machine's CPU, memory and disk are the user's."""
    del settings, local, plan, ledger
    return bill([], notes=["no cloud resources: the cost is this machine's CPU, memory and disk"])
