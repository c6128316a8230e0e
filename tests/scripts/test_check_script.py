"""`bash scripts/check.sh` where it cannot install the tools its tests run: it stops before
anything else, with one message naming what is missing and the command that installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.tools import debian_packages, require


def _check_sh(tmp_path: Path, uid: int, *commands: str) -> subprocess.CompletedProcess[str]:
    """check.sh on a PATH that holds only `commands` (names or paths) and an `id` answering
    `uid`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("dirname", *commands):
        found = shutil.which(command)
        assert found is not None
        (bin_dir / Path(command).name).symlink_to(found)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "id").chmod(0o755)
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(REPO / "scripts" / "check.sh")],
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_root_it_names_every_missing_tool_and_runs_nothing(tmp_path: Path) -> None:
    run = _check_sh(tmp_path, 1000)
    assert run.returncode == 1
    assert run.stdout == ""  # no install, no sync, no check started
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "as root" in message and "sudo bash scripts/check.sh" in message
    for tool, package in debian_packages().items():
        assert tool in message and package in message


@pytest.mark.parametrize("present", ["promtool", "wrk"])
def test_as_root_without_apt_get_it_stops_naming_the_rest(tmp_path: Path, present: str) -> None:
    require(present)
    run = _check_sh(tmp_path, 0, present)
    assert run.returncode == 1
    assert run.stdout == ""
    missing = [tool for tool in debian_packages() if tool != present]
    assert f"missing {' '.join(missing)} and there is no apt-get" in run.stderr


def test_as_root_it_installs_every_missing_tool_with_apt_get(tmp_path: Path) -> None:
    """An apt-get that records its arguments; the run then stops at the next program this PATH
    lacks (npm or uv), after the install."""
    calls = tmp_path / "apt-get.calls"
    stub = tmp_path / "stubs" / "apt-get"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    run = _check_sh(tmp_path, 0, str(stub))
    packages = " ".join(debian_packages().values())
    assert calls.read_text().splitlines() == ["update -qq", f"install -y -qq {packages}"]
    assert f"== installing {packages} (apt-get" in run.stdout
    assert run.returncode != 0
