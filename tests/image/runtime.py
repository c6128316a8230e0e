"""Run a built image as a container, the way a platform does, without a container engine.

`podman run` cannot start containers in this kind of sandbox, so this does what an engine does
with the kernel's own tools: the image's root file system from the image storage (`podman image
mount`, nothing copied) under an overlay that takes the container's writes and is thrown away
after, new mount, network and PID namespaces (`unshare`), the root read-only when the platform
says so, a tmpfs where it mounts one, `/proc`, `/sys` (read-only) and a minimal `/dev`,
then the entry point as PID 1 under the platform's user, working directory and environment
(`enter.py` does the part inside the namespaces).

The container has its own loopback: it listens on its real port (8080) without taking that port
on the host, and a health-check command's `127.0.0.1:8080` means the container itself.
Published ports are reached through a unix socket (`RunningContainer.client`); host services
the container must reach (an object-store server on 127.0.0.1) are relayed into its namespace
at the same port (`reach`). A container without either has no network at all, as
`--network none`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from tests.image.buildah import ImageConfig, image_config, mounted

HERE = Path(__file__).resolve().parent
ENTER = HERE / "enter.py"
FORWARD = HERE / "forward.py"


@dataclass(frozen=True)
class BindMount:
    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunSpec:
    """What a platform sets when it starts a container from an image; None keeps the image's.

    Entry point and command follow Docker's rule (which Kubernetes' `command`/`args` and ECS's
    `entryPoint`/`command` follow too): a new entry point drops the image's CMD unless a command
    is given as well.
    """

    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    """`UID:GID` (numeric), as every platform here declares it."""
    working_dir: str | None = None
    read_only_root: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    """Mount point → tmpfs options (`size=64m,noexec`)."""
    mounts: tuple[BindMount, ...] = ()
    ports: tuple[int, ...] = ()
    """Container ports the platform routes traffic to."""
    image_volumes: bool = True
    """Docker (and so ECS) gives each VOLUME of the image a fresh writable volume unless the
    platform mounts something there; Kubernetes does not (its pods mount what they declare)."""

    def argv(self, image: ImageConfig) -> list[str]:
        entrypoint = list(self.entrypoint if self.entrypoint is not None else image.entrypoint)
        if self.command is not None:
            return entrypoint + list(self.command)
        return entrypoint + ([] if self.entrypoint is not None else list(image.cmd))

    def ids(self, image: ImageConfig) -> tuple[int, int]:
        user = self.user if self.user is not None else image.user
        uid, _, gid = (user or "0").partition(":")
        return int(uid), int(gid or uid)

    def writable(self, image: ImageConfig) -> dict[str, str]:
        """Mount point → tmpfs options: the declared ones, plus the image's volumes (empty, as
        a fresh Docker volume over the image's empty /tmp starts)."""
        declared = {*self.tmpfs, *(m.target for m in self.mounts)}
        volumes = image.volumes if self.image_volumes else ()
        return {**{v: "" for v in volumes if v not in declared}, **self.tmpfs}

    def environment(self, image: ImageConfig, home: str) -> dict[str, str]:
        """The image's variables, then the platform's; HOSTNAME and HOME as Docker sets them."""
        return {"HOSTNAME": "modelship", "HOME": home, **image.env, **self.env}


@dataclass
class RunningContainer:
    image: str
    config: ImageConfig
    spec: RunSpec
    pid: int
    """PID 1 of the container, as the host sees it."""
    started: float
    state: Path
    description: Path
    process: subprocess.Popen[bytes]
    """`unshare`, whose exit status is PID 1's."""

    def client(self, port: int, timeout: float = 10) -> httpx.Client:
        """HTTP to the container's `port` (what a load balancer or kubelet reaches)."""
        transport = httpx.HTTPTransport(uds=str(self.state / f"port-{port}.sock"))
        return httpx.Client(
            transport=transport, base_url=f"http://container:{port}", timeout=timeout
        )

    def exited(self) -> int | None:
        return self.process.poll()

    def logs(self) -> str:
        return (self.state / "log").read_text(errors="replace")

    def exec(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """One more process in the container (a health-check command): same namespaces, root,
        user, working directory and environment."""
        return subprocess.run(
            ["nsenter", f"--target={self.pid}", "--mount", "--net", "--pid", "--",
             sys.executable, str(ENTER), "exec", str(self.description), *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def wait_until(self, port: int, path: str, within: float) -> float:
        """Poll GET `path` until it answers 200; the seconds since the container started."""
        deadline = time.monotonic() + within
        with self.client(port, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.exited() is not None:
                    raise AssertionError(f"container exited ({self.exited()}):\n{self.logs()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(path).status_code == 200:
                        return time.monotonic() - self.started
                time.sleep(0.1)
        raise AssertionError(f"{path} not 200 within {within} s:\n{self.logs()}")

    def wait(self, timeout: float) -> int:
        """The entry point's exit code (the container's), waiting at most `timeout` seconds."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            message = f"container still running after {timeout} s:\n{self.logs()}"
            raise AssertionError(message) from None

    def stop(self, grace: float) -> tuple[int, float]:
        """SIGTERM to PID 1, as `docker stop`, kubelet and ECS send; (exit code, seconds)."""
        sent = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        code = self.wait(grace)
        return code, time.monotonic() - sent

    def rss_bytes(self) -> int:
        """Resident memory of every process in the container (what its memory limit counts)."""
        total = 0
        for pid in _tree(self.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total


def _tree(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                found += _tree(int(child))
    return found


def _home(root: Path, uid: int) -> str:
    """The user's home from the image's /etc/passwd, as Docker sets HOME ("/" if none)."""
    with contextlib.suppress(FileNotFoundError):
        for line in (root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == str(uid):
                return fields[5]
    return "/"


def _await_ready(process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    """Read the `ready` line a helper prints once it is set up."""
    assert process.stdout is not None
    line = _readline(process.stdout, timeout)
    if line.strip() != b"ready":
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"{what} did not start: {line!r}\n{err.decode(errors='replace')}")


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return b""
    return stream.readline()


def _child_of(pid: int, timeout: float = 10) -> int:
    """`unshare --fork` runs the container's PID 1 as its only child: that child's host PID."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("the container's first process did not appear")


@contextlib.contextmanager
def run_container(
    image: str, spec: RunSpec, *, reach: Sequence[int] = ()
) -> Iterator[RunningContainer]:
    """Start `image` as `spec` describes; stop and remove it on the way out."""
    config = image_config(image)
    state = Path(tempfile.mkdtemp(prefix="modelship-ctr-"))
    children: list[subprocess.Popen[bytes]] = []  # the container first, then its relays
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, state, ignore_errors=True)
        source = cleanup.enter_context(mounted(image))
        cleanup.callback(_stop_all, children)
        for name in ("root", "layers"):
            (state / name).mkdir()
        uid, gid = spec.ids(config)
        description = state / "container.json"
        description.write_text(
            json.dumps(
                {
                    "image": str(source),
                    "layers": str(state / "layers"),
                    "root": str(state / "root"),
                    "read_only": spec.read_only_root,
                    "tmpfs": spec.writable(config),
                    "mounts": [
                        {"source": str(m.source), "target": m.target, "read_only": m.read_only}
                        for m in spec.mounts
                    ],
                    "argv": spec.argv(config),
                    "env": spec.environment(config, _home(source, uid)),
                    "uid": uid,
                    "gid": gid,
                    "working_dir": spec.working_dir or config.working_dir,
                    "log": str(state / "log"),
                }
            )
        )
        # Host side of each relay into the container: unix socket -> the host's 127.0.0.1:port.
        started = time.monotonic()
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--net", "--pid", "--fork",
             "--kill-child", sys.executable, str(ENTER), "start", str(description)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        children.append(process)
        _await_ready(process, f"container of {image}")
        if reach:
            children.append(
                _relay([f"unix:{state}/reach-{p}.sock=tcp:127.0.0.1:{p}" for p in reach])
            )
        pid = _child_of(process.pid)
        # Container side: its port -> a socket the host can open; its 127.0.0.1:p -> the host.
        pairs = [f"unix:{state}/port-{p}.sock=tcp:127.0.0.1:{p}" for p in spec.ports]
        pairs += [f"tcp:127.0.0.1:{p}=unix:{state}/reach-{p}.sock" for p in reach]
        if pairs:
            children.append(_relay(pairs, netns_of=pid))
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.close()
        yield RunningContainer(image, config, spec, pid, started, state, description, process)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()  # unshare --kill-child: PID 1 goes too, and with it the namespaces
        child.wait(timeout=30)


def _relay(pairs: list[str], netns_of: int | None = None) -> subprocess.Popen[bytes]:
    prefix = [] if netns_of is None else ["nsenter", f"--target={netns_of}", "--net", "--"]
    relay = subprocess.Popen(
        [*prefix, sys.executable, str(FORWARD), *pairs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _await_ready(relay, "port relay")
    return relay
