"""Become a container: the part of a container runtime that runs inside the new namespaces.

`runtime.py` starts this under `unshare --mount --net --pid --fork` (the container's own mount,
network and process namespaces), as root, with a JSON description:

    python enter.py start DESCRIPTION.json   # set up the file system, then exec the entry point
    python enter.py exec DESCRIPTION.json ARG...  # (under nsenter) one more process in it

`start` brings the loopback interface up, mounts the image's root file system as an overlay (the
image's layer below, the container's own writes above, as Docker's overlay2 driver does; then
read-only when the platform says so), mounts `/proc`, `/sys` (read-only), a minimal `/dev`, the
tmpfs and bind mounts of the description, prints `ready` and waits for one line on stdin (the
host starts its port relays in between), then execs the entry point. Both modes exec the same
way: chroot, the working directory, the user and group (no supplementary groups, no new
privileges), and the given environment only, the program looked up on that environment's PATH
as a container runtime does.
Standard library only: it runs with the host's interpreter before the chroot.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

SIOCSIFFLAGS = 0x8914
IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
EXEC_FAILED = 127  # what Docker reports when the entry point cannot be executed


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _loopback_up() -> None:
    """A new network namespace has `lo` down: bring it up (what `ip link set lo up` does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP_LOOPBACK_RUNNING))


def _inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _prepare_mount_points(root: Path, description: dict[str, Any]) -> None:
    """Mount points must exist before the root turns read-only; they are made in the
    container's own upper layer, which is thrown away with it (the image is never changed)."""
    targets = [
        "/proc",
        "/sys",
        "/dev",
        *description["tmpfs"],
        *(m["target"] for m in description["mounts"]),
    ]
    for target in targets:
        _inside(root, target).mkdir(parents=True, exist_ok=True)


def _setup(description: dict[str, Any]) -> None:
    root, layers = Path(description["root"]), Path(description["layers"])
    _loopback_up()
    # The container's writable layer in memory, in its own mount namespace: gone with it.
    _mount("-t", "tmpfs", "-o", "mode=700,size=2g", "layers", str(layers))
    for name in ("upper", "work"):
        (layers / name).mkdir()
    overlay = f"lowerdir={description['image']},upperdir={layers}/upper,workdir={layers}/work"
    _mount("-t", "overlay", "-o", overlay, "overlay", str(root))
    _prepare_mount_points(root, description)
    if description["read_only"]:
        _mount("--bind", str(root), str(root))
        _mount("-o", "remount,bind,ro", str(root))
    _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(root / "proc"))
    # Read-only, as Docker mounts it: CPU topology for joblib's core count (`lscpu`), cgroups.
    _mount("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(root / "sys"))
    dev = root / "dev"
    _mount("-t", "tmpfs", "-o", "mode=755,size=65536k,nosuid", "tmpfs", str(dev))
    for name in DEVICES:
        (dev / name).touch()
        _mount("--bind", f"/dev/{name}", str(dev / name))
    (dev / "shm").mkdir()
    _mount(
        "-t", "tmpfs", "-o", "mode=1777,size=65536k,nosuid,nodev,noexec", "shm", str(dev / "shm")
    )
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        (dev / link).symlink_to(target)
    (dev / "stdout").symlink_to("/proc/self/fd/1")
    (dev / "stderr").symlink_to("/proc/self/fd/2")
    for target, extra in description["tmpfs"].items():
        options = ",".join(filter(None, ("mode=1777", extra)))
        _mount("-t", "tmpfs", "-o", options, "tmpfs", str(_inside(root, target)))
    for mount in description["mounts"]:
        point = _inside(root, mount["target"])
        # A bind mount under a tmpfs (`-v /tmp/store/models:/tmp/store/models` over the /tmp
        # volume) needs its mount point made in that fresh tmpfs, as Docker makes it.
        point.mkdir(parents=True, exist_ok=True)
        _mount("--bind", mount["source"], str(point))
        if mount["read_only"]:
            _mount("-o", "remount,bind,ro", str(point))


def _exec(description: dict[str, Any], argv: list[str]) -> None:
    """chroot, cd, drop to the user, exec: the last steps of every container start."""
    env: dict[str, str] = description["env"]
    os.chroot(description["root"])
    os.chdir(description["working_dir"])
    os.setgroups([])
    os.setgid(description["gid"])
    os.setuid(description["uid"])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # `unshare --kill-child` asks for SIGKILL when unshare dies, but changing the user clears
    # that request: without it again, every container whose unshare is killed lives on.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 - what a container runtime does
    except OSError as exc:
        # Docker's wording, so the failure reads as a platform would report it.
        print(f"exec {argv[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        os._exit(EXEC_FAILED)


def main() -> None:
    mode, path, *argv = sys.argv[1:]
    description = json.loads(Path(path).read_text())
    if mode == "exec":
        _exec(description, argv)
    _setup(description)
    print("ready", flush=True)
    sys.stdin.readline()  # the host's relays are listening now
    log = os.open(description["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for fd in (1, 2):
        os.dup2(log, fd)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    _exec(description, description["argv"])


if __name__ == "__main__":
    main()
