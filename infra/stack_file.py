"""Where the project lives and what a stack file says, for every tool that runs a stack.

`Pulumi.<stack>.yaml` is read here only: by the offline runner (`infra.offline`), the render,
the tests' mocks and plans, and the policy pack's config (`policy.stack_config`). The program
itself never reads it: under `pulumi up` the engine hands it the config (`infra.config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository (where `Pulumi.yaml` is); relative paths in config are relative to it."""
PROGRAM_DIR = REPO_ROOT / "infra"
"""The Pulumi program (`main: infra/` in `Pulumi.yaml`)."""
PROJECT = "modelship"
"""The project name of `Pulumi.yaml`, which is also the namespace of unqualified config keys."""


def stack_file_path(stack: str) -> Path:
    return REPO_ROOT / f"Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class StackFile:
    """The `config` of one `Pulumi.<stack>.yaml`, every key fully qualified (`modelship:cpu`)."""

    stack: str
    config: Mapping[str, Any]
    """Every configured key, including `{"secure": ...}` values encrypted with the stack's key."""

    @property
    def plain(self) -> dict[str, Any]:
        """The keys that are not encrypted (tests and tools pass secrets as overrides instead)."""
        return {key: value for key, value in self.config.items() if not _is_secure(value)}


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def read_stack_file(stack: str) -> StackFile:
    """Parse `Pulumi.<stack>.yaml`; FileNotFoundError or ValueError name the file."""
    path = stack_file_path(stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack config {path.name} at the repository root")
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path.name}: `config` must be a mapping")
    qualified = {key if ":" in key else f"{PROJECT}:{key}": value for key, value in config.items()}
    return StackFile(stack=stack, config=qualified)


def load_stack_config(stack: str) -> dict[str, Any]:
    """The plain (non-secure) config of `Pulumi.<stack>.yaml`, keys fully qualified."""
    return read_stack_file(stack).plain


def config_string(value: Any) -> str:
    """A config value as the engine hands it to the program: strings, JSON for the rest."""
    return value if isinstance(value, str) else json.dumps(value)
