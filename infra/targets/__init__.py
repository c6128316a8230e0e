"""What a deployment target is: a settings reader plus a deploy function, and their outputs.

`infra/__main__.py` keeps a table `{"gke": GKE, ...}`; adding a target is one entry plus a module.
Every target returns `TargetOutputs`, so all stacks export `url` and `image` under the same names,
and, priced by the target's `bill` (`infra.core.cost`), `capacity`, `monthly_cost`,
`cost_per_million_predictions` and `cost_breakdown`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import pulumi

from infra.config import ConfigReader
from infra.core import cost
from infra.core.capacity import CapacityPlan, plan_capacity, served_card
from infra.core.ids import AutoNameLimit, IdRule, check_project_name, make_id
from infra.core.labels import standard_labels
from infra.settings import Settings

S = TypeVar("S")


@dataclass(frozen=True)
class TargetOutputs:
    """Outputs every target exports (`url`, `image`) plus target-specific ones."""

    url: pulumi.Output[str]
    image: pulumi.Output[str]
    extra: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)

    def export(self) -> None:
        """`pulumi.export` all outputs with snake_case names."""
        pulumi.export("url", self.url)
        pulumi.export("image", self.image)
        for name, value in self.extra.items():
            pulumi.export(name, value)


@dataclass(frozen=True)
class Target(Generic[S]):
    """A deployment target: `read` validates its config section, `deploy` declares resources."""

    read: Callable[[ConfigReader, Settings], S]
    deploy: Callable[[Settings, S], TargetOutputs]
    bill: Callable[[Settings, S, CapacityPlan, cost.Ledger], cost.Bill]
    """What the declared resources cost a month at the planned load."""
    auto_named: tuple[AutoNameLimit, ...] = ()
    """Resources left to Pulumi's auto-naming whose cloud caps the name's length."""
    served_version: Callable[[S], Path | None] = lambda _section: None
    """The store version directory the target serves from this machine (local), if any."""
    single_replica: bool = False
    """The target runs exactly one container: replicas are checked, never derived."""

    def read_section(self, reader: ConfigReader, settings: Settings) -> S:
        """The target's settings; a project name too long for an auto-name is a problem too."""
        check_project_name(reader, settings.project, self.auto_named)
        return self.read(reader, settings)

    def plan(
        self, reader: ConfigReader, settings: Settings, section: S
    ) -> tuple[Settings, CapacityPlan]:
        """Replicas from `modelship:targetRps` and the served model's measured rate
        (`infra.core.capacity`): the settings to deploy with, and the plan."""
        card = served_card(reader, settings, self.served_version(section))
        return plan_capacity(reader, settings, card, single_replica=self.single_replica)

    def priced(
        self,
        outputs: TargetOutputs,
        settings: Settings,
        section: S,
        plan: CapacityPlan,
        ledger: cost.Ledger,
    ) -> TargetOutputs:
        """`outputs` plus the capacity and cost outputs, also logged for `pulumi preview`."""
        priced = self.bill(settings, section, plan, ledger)
        cost.log(plan, priced)
        return replace(outputs, extra={**outputs.extra, **cost.outputs(plan, priced)})


@dataclass(frozen=True)
class Stack(Generic[S]):
    """What every stage of a target's composer needs: the shared settings, the target's own,
    the labels every resource carries, and the stack's logical names and physical ids."""

    settings: Settings
    target: S
    labels: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        labels = standard_labels(self.settings.project, self.settings.stack)
        object.__setattr__(self, "labels", labels)  # frozen: set once, here

    @property
    def name(self) -> str:
        """The prefix of every logical name."""
        return self.settings.project

    def id(self, rule: IdRule, role: str = "") -> str:
        """A physical id for this project and stack that `rule` accepts."""
        return make_id(rule, self.settings.project, self.settings.stack, role=role)
