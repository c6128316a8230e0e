"""The cgroup a measured server runs in: quantities as Kubernetes writes them, the limits the
kernel holds, and both layouts (v1 on this machine's kernel; v2's files)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from modelship.build.capacity import cgroup
from modelship.build.capacity.cgroup import ConfinementError, Limits
from modelship.errors import ModelshipError


@pytest.mark.parametrize(
    ("text", "millicores", "written"),
    [("500m", 500, "500m"), ("0.5", 500, "500m"), ("1", 1000, "1"), ("1500m", 1500, "1500m")],
)
def test_cpu_quantities(text: str, millicores: int, written: str) -> None:
    assert cgroup.parse_cpu(text) == millicores
    assert Limits(millicores, 2**29).cpu == written


@pytest.mark.parametrize(
    ("text", "size", "written"),
    [
        ("512Mi", 2**29, "512Mi"),
        ("1Gi", 2**30, "1Gi"),
        ("1024Mi", 2**30, "1Gi"),
        ("500M", 5 * 10**8, "500M"),
    ],
)
def test_memory_quantities(text: str, size: int, written: str) -> None:
    assert cgroup.parse_memory(text) == size
    assert Limits(500, size).memory == written


@pytest.mark.parametrize("text", ["abc", "5x", "", "m"])
def test_a_cpu_that_is_no_quantity_is_named(text: str) -> None:
    with pytest.raises(ModelshipError, match=f"--cpu {text!r} is not a CPU quantity"):
        cgroup.parse_cpu(text)


def test_the_kernel_enforces_the_quota_on_a_busy_process() -> None:
    """v1 here: a process spinning on one core gets 200m of it in the group, then the group
    is gone."""
    if cgroup.layout() == 0:
        pytest.fail("no cgroup hierarchy at /sys/fs/cgroup: run the tests as root on Linux")
    group = cgroup.create(f"modelship-test-{os.getpid()}", Limits(200, 128 * 2**20))
    try:
        assert group.read_limits() == Limits(200, 128 * 2**20)
        spinner = subprocess.Popen(
            ["python3", "-c", "while True: pass"],
            preexec_fn=lambda: group.join(os.getpid()),  # noqa: PLW1509
        )
        assert spinner.pid in group.pids()
        before, started = group.cpu_seconds(), time.monotonic()
        time.sleep(1.5)
        share = (group.cpu_seconds() - before) / (time.monotonic() - started)
        assert 0.05 < share <= 0.2 * 1.15
        assert group.memory_peak_bytes() > 0
    finally:
        group.remove()
    assert spinner.wait(timeout=5) != 0  # killed with the group
    assert not any(path.exists() for path in group.dirs.values())


def test_cgroup_v2_files(tmp_path: Path) -> None:
    """The unified layout's files, written and read as the kernel's interface names them (this
    machine's cgroup v2 has no controllers: a directory stands in for the kernel)."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("\n")
    assert cgroup.layout(tmp_path) == 2
    group = cgroup.create("g", Limits(500, 2**29), tmp_path)
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory"
    files = tmp_path / "g"
    assert (files / "cpu.max").read_text() == "50000 100000"
    assert (files / "memory.max").read_text() == str(2**29)
    assert group.read_limits() == Limits(500, 2**29)
    (files / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nnr_throttled 3\n")
    (files / "memory.peak").write_text("73400320\n")
    (files / "memory.events").write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    assert group.cpu_seconds() == 1.5
    assert group.memory_peak_bytes() == 73400320
    assert group.oom_kills() == 1


def test_no_hierarchy_says_what_is_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfinementError, match=r"needs write access to .*: run it as root"):
        cgroup.create("g", Limits(500, 2**29), tmp_path)
