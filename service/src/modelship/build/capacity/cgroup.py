"""Confine a process the way a container runtime does: a cgroup with a CPU quota and a memory
limit, the two numbers Kubernetes (`resources.limits`) and ECS (task `cpu`/`memory`) set.

Both layouts are handled: cgroup v1 (one hierarchy per controller: `cpu`, `cpuacct`, `memory`)
and cgroup v2 (one unified hierarchy with `cpu.max`, `memory.max`, `memory.peak`). Creating a
group needs root (or a delegated subtree); without it `create` says so instead of measuring an
unconfined server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from modelship.errors import ModelshipError

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The CFS period Kubernetes and ECS use: a 500m limit is 50 ms of CPU in every 100 ms.
PERIOD_US = 100_000
_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6}
_MEMORY_UNITS |= {"G": 10**9, "T": 10**12, "": 1}


class ConfinementError(ModelshipError):
    """The machine cannot confine the server (no writable cgroup): a failure of the setup."""

    exit_code = 1


@dataclass(frozen=True)
class Limits:
    """A container size: CPU in millicores, memory in bytes."""

    cpu_millicores: int
    memory_bytes: int

    @property
    def cpu(self) -> str:
        """The CPU as Kubernetes writes it back: whole cores as `1`, else millicores `500m`."""
        cores, rest = divmod(self.cpu_millicores, 1000)
        return str(cores) if rest == 0 else f"{self.cpu_millicores}m"

    @property
    def memory(self) -> str:
        """The memory in the largest unit that divides it (`512Mi`, `1Gi`, `500M`)."""
        for unit in ("Ti", "Gi", "T", "G", "Mi", "M", "Ki", "k"):
            if self.memory_bytes % _MEMORY_UNITS[unit] == 0:
                return f"{self.memory_bytes // _MEMORY_UNITS[unit]}{unit}"
        return str(self.memory_bytes)


def parse_cpu(text: str) -> int:
    """A Kubernetes CPU quantity (`500m`, `0.5`, `1`) in millicores."""
    try:
        millicores = (
            Decimal(text[:-1]) if text.endswith("m") else Decimal(text) * 1000
        ).to_integral_value()
    except InvalidOperation:
        raise ModelshipError(
            f"--cpu {text!r} is not a CPU quantity (allowed: millicores like 500m, or cores "
            "like 0.5, 1, 2)"
        ) from None
    if millicores < 10:
        raise ModelshipError(f"--cpu {text!r} is below 10m, the smallest quota worth measuring")
    return int(millicores)


def parse_memory(text: str) -> int:
    """A Kubernetes memory quantity (`512Mi`, `1Gi`, `500M`) in bytes."""
    number, unit = text, ""
    for suffix in sorted(_MEMORY_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, unit = text[: -len(suffix)], suffix
            break
    try:
        value = int(Decimal(number) * _MEMORY_UNITS[unit])
    except InvalidOperation:
        raise ModelshipError(
            f"--memory {text!r} is not a memory quantity (allowed: a number with Ki, Mi, Gi, "
            "k, M or G, like 512Mi or 1Gi)"
        ) from None
    if value < 64 * 2**20:
        raise ModelshipError(
            f"--memory {text!r} is below 64Mi: no Python server starts in that little"
        )
    return value


class Cgroup:
    """One cgroup (in every controller it needs) holding a process and its children."""

    version = 0

    def __init__(self, dirs: dict[str, Path], limits: Limits) -> None:
        self.dirs = dirs  # controller (cpu, cpuacct, memory; or "" for v2) -> the group's dir
        self.limits = limits

    def join(self, pid: int) -> None:
        """Move `pid` into the group; its children started later inherit it."""
        for path in {d / "cgroup.procs" for d in self.dirs.values()}:
            path.write_text(str(pid))

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for path in {d / "cgroup.procs" for d in self.dirs.values()}:
            with contextlib.suppress(OSError):
                pids |= {int(line) for line in path.read_text().split()}
        return sorted(pids)

    def cpu_seconds(self) -> float:
        raise NotImplementedError

    def memory_peak_bytes(self) -> int:
        raise NotImplementedError

    def reset_memory_peak(self) -> None:
        """Start a new peak (where the kernel allows it; else the peak stays since creation)."""

    def read_limits(self) -> Limits:
        """The limits as the kernel holds them (read back, not what was asked)."""
        raise NotImplementedError

    def oom_kills(self) -> int:
        raise NotImplementedError

    def remove(self) -> None:
        """Kill whatever is left in the group, then delete it."""
        deadline = time.monotonic() + 5
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for path in self.dirs.values():
            for _ in range(50):  # the kernel frees a group a moment after its last process
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def _stat(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class CgroupV1(Cgroup):
    version = 1

    def cpu_seconds(self) -> float:
        return _read_int(self.dirs["cpuacct"] / "cpuacct.usage") / 1e9

    def memory_peak_bytes(self) -> int:
        return _read_int(self.dirs["memory"] / "memory.max_usage_in_bytes")

    def reset_memory_peak(self) -> None:
        (self.dirs["memory"] / "memory.max_usage_in_bytes").write_text("0")

    def read_limits(self) -> Limits:
        cpu = self.dirs["cpu"]
        quota, period = _read_int(cpu / "cpu.cfs_quota_us"), _read_int(cpu / "cpu.cfs_period_us")
        memory = _read_int(self.dirs["memory"] / "memory.limit_in_bytes")
        return Limits(round(quota * 1000 / period), memory)

    def oom_kills(self) -> int:
        return _stat(self.dirs["memory"] / "memory.oom_control", "oom_kill")


class CgroupV2(Cgroup):
    version = 2

    def cpu_seconds(self) -> float:
        return _stat(self.dirs[""] / "cpu.stat", "usage_usec") / 1e6

    def memory_peak_bytes(self) -> int:
        group = self.dirs[""]
        peak = group / "memory.peak"  # Linux 5.19+; before it, the current usage is all there is
        return _read_int(peak if peak.exists() else group / "memory.current")

    def read_limits(self) -> Limits:
        group = self.dirs[""]
        quota, period = (group / "cpu.max").read_text().split()
        memory = (group / "memory.max").read_text().strip()
        if quota == "max" or memory == "max":
            raise ConfinementError(f"the limits of {group} did not take (cpu.max {quota})")
        return Limits(round(int(quota) * 1000 / int(period)), int(memory))

    def oom_kills(self) -> int:
        return _stat(self.dirs[""] / "memory.events", "oom_kill")


def layout(root: Path = CGROUP_ROOT) -> int:
    """Which cgroup layout `root` holds: 2 (unified), 1 (one hierarchy per controller), or 0."""
    if (root / "cgroup.controllers").is_file():
        return 2
    v1 = ("cpu/cpu.cfs_quota_us", "cpuacct/cpuacct.usage", "memory/memory.limit_in_bytes")
    if all((root / file).is_file() for file in v1):
        return 1
    return 0


NEEDS = (
    "modelship capacity confines the server in a cgroup (a CPU quota and a memory limit, as a "
    "container runtime does), which needs write access to {root}: run it as root (sudo -E "
    "uv run modelship capacity ...) or in a container started with --privileged"
)


def create(name: str, limits: Limits, root: Path = CGROUP_ROOT) -> Cgroup:
    """A new group `name` with `limits` in force; `remove()` it when done."""
    found = layout(root)
    if found == 0:
        raise ConfinementError(
            f"no cgroup v1 (cpu, cpuacct, memory) or v2 hierarchy at {root}: "
            + NEEDS.format(root=root)
        )
    quota = limits.cpu_millicores * PERIOD_US // 1000
    try:
        if found == 2:
            controllers = set((root / "cgroup.subtree_control").read_text().split())
            missing = {"cpu", "memory"} - controllers
            if missing:
                (root / "cgroup.subtree_control").write_text(
                    " ".join(f"+{c}" for c in sorted(missing))
                )
            group = root / name
            group.mkdir()
            cgroup: Cgroup = CgroupV2({"": group}, limits)
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (group / "memory.max").write_text(str(limits.memory_bytes))
            _try_write(group / "memory.swap.max", "0")  # Kubernetes runs without swap
            return cgroup
        dirs = {c: root / c / name for c in ("cpu", "cpuacct", "memory")}
        cgroup = CgroupV1(dirs, limits)
        for path in dirs.values():
            if not path.is_dir():  # cpu and cpuacct are often one hierarchy (cpu,cpuacct)
                path.mkdir()
        (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
        (dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        _try_write(dirs["memory"] / "memory.swappiness", "0")  # Kubernetes runs without swap
        return cgroup
    except PermissionError as exc:
        _remove_quietly(root, name)
        raise ConfinementError(f"cannot write {exc.filename}: " + NEEDS.format(root=root)) from None
    except OSError as exc:
        _remove_quietly(root, name)
        raise ConfinementError(
            f"cannot set up the cgroup {name} under {root}: {exc.strerror or exc} ({exc.filename})"
        ) from None


def _try_write(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(value)


def _remove_quietly(root: Path, name: str) -> None:
    for path in (root / name, *(root / c / name for c in ("cpu", "cpuacct", "memory"))):
        with contextlib.suppress(OSError):
            path.rmdir()
