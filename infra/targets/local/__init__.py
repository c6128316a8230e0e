"""The local target: the service image built and run with Docker on the user's own machine."""

from __future__ import annotations

from infra.targets import Target
from infra.targets.local.config import LocalSettings, read_local_settings
from infra.targets.local.deploy import deploy_local

TARGET: Target[LocalSettings] = Target(
    read=read_local_settings,
    deploy=deploy_local,
)

__all__ = ["TARGET", "LocalSettings", "deploy_local", "read_local_settings"]
