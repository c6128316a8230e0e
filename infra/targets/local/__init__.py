"""The local target: the service image built and run with Docker on the user's own machine."""

from __future__ import annotations

from pathlib import Path

from infra.targets import Target
from infra.targets.local.config import LocalSettings, read_local_settings
from infra.targets.local.cost import local_bill
from infra.targets.local.deploy import deploy_local


def served_version(local: LocalSettings) -> Path | None:
    """The store version `modelship:modelUri` serves, a directory on this machine."""
    store = local.model_store
    return None if store.version is None else store.directory / store.version


TARGET: Target[LocalSettings] = Target(
    read=read_local_settings,
    deploy=deploy_local,
    bill=local_bill,
    served_version=served_version,
    single_replica=True,
)

__all__ = ["TARGET", "LocalSettings", "deploy_local", "read_local_settings"]
