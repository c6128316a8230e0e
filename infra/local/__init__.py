"""The local target: the service image built and run with Docker on the user's own machine."""

from __future__ import annotations

from infra.local.config import LocalSettings, read_local_settings
from infra.local.deploy import deploy_local
from infra.targets import Target

TARGET: Target[LocalSettings] = Target(
    read=read_local_settings,
    deploy=deploy_local,
    description="Docker on this machine: one container behind a port on localhost",
)

__all__ = ["TARGET", "LocalSettings", "deploy_local", "read_local_settings"]
