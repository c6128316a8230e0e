"""The programs outside the Python environment that tests run (scripts/system-tools.txt).

`bash scripts/check.sh` installs them before any test runs; a test run another way that reaches
a missing one fails with what to install, never skips: a skipped test reads as one that ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parents[1] / "scripts" / "system-tools.txt"


def debian_packages() -> dict[str, str]:
    """Each command and the Debian package that provides it."""
    packages = {}
    for line in TABLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            command, package, *_ = line.split()
            packages[command] = package
    return packages


def missing_message(commands: list[str]) -> str:
    """The one message for missing tools: what is missing and the command that installs it."""
    packages = debian_packages()
    return (
        f"missing: {', '.join(commands)}; `bash scripts/check.sh` installs them when run as root,"
        f" or: sudo apt-get install -y {' '.join(packages[c] for c in commands)}"
    )


def require(command: str) -> str:
    """The path of `command`; the test fails (not skips) when it is not installed."""
    if command not in debian_packages():
        raise ValueError(f"{command} is not in {TABLE.name}: add it there, for check.sh")
    found = shutil.which(command)
    if found is None:
        pytest.fail(missing_message([command]), pytrace=False)
    return found
