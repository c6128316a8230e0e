"""The gke target: Google Kubernetes Engine (Autopilot by default) in a project of the user's."""

from __future__ import annotations

from infra.targets import Target
from infra.targets.gke.config import GkeSettings, read_gke_settings
from infra.targets.gke.cost import gke_bill
from infra.targets.gke.deploy import deploy_gke
from infra.targets.gke.ids import AUTO_NAMED

TARGET: Target[GkeSettings] = Target(
    read=read_gke_settings,
    auto_named=AUTO_NAMED,
    deploy=deploy_gke,
    bill=gke_bill,
)

__all__ = ["TARGET", "GkeSettings", "deploy_gke", "read_gke_settings"]
