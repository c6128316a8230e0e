"""Measure what one confined replica serves: the real server in a cgroup, driven open-loop at
rising rates until p99 passes the target (docs/capacity.md has the method and its figures).

`ConfinedServer` starts `modelship serve` (what the image runs) with its process, and every
worker it forks, inside a cgroup holding the CPU quota and memory limit; `LoadGenerator` is the
open-loop generator's process on another core; `find_capacity` ramps the rate exponentially
in short steps until one fails, then bisects between the last pass and the first failure in
full steps, and repeats the deciding step before it reports it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from modelship.build.capacity import cgroup as cgroups
from modelship.build.capacity.cgroup import CGROUP_ROOT, Cgroup, ConfinementError, Limits
from modelship.build.capacity.load import http_request
from modelship.contracts.capacity import Capacity, CapacityPoint
from modelship.contracts.card import ModelCard
from modelship.errors import ModelshipError

READY_SECONDS = 120.0
# A step passes when nothing failed, p99 held and the generator kept to its schedule (sent the
# step's requests within this share of the step). Its timer lag needs no gate: latency counts
# from the due time, so a late generator only makes p99 worse (the rate found, lower); a lag
# above this share of the target is reported as a busy machine.
SCHEDULE_SLACK = 1.05
GENERATOR_LAG_SHARE = 0.1
# Bisection stops when the first failing rate is within this share of the last passing one.
RESOLUTION = 0.04
# The ramp's steps are this share of a full step (at least RAMP_MIN_SECONDS): far below the
# capacity a rate passes in a second as surely as in four, and above it the queue grows past
# the target within a second. Only full steps decide the result.
RAMP_SHARE = 0.25
RAMP_MIN_SECONDS = 0.5
# A search takes 13-16 steps when nothing surprises it. The bound leaves room for the search to
# walk back down after a rate that passed in a quick moment of the machine fails its deciding
# step, and then every rate down to the capacity (each a full step and a second's pause).
MAX_STEPS = 28
# A full step that passed at a rate this share above the result, which a later step at or below
# it then failed, means the machine's own speed moved during the search: the result is flagged
# as one that may not repeat within this share.
REPEAT_SHARE = 0.15
DISTINCT_BODIES = 64


@dataclass(frozen=True)
class Plan:
    """What to measure: one container size, a latency target, and the request sizes."""

    limits: Limits
    p99_target_ms: float
    workers: int = 1
    rows_per_request: tuple[int, ...] = (1,)
    step_seconds: float = 4.0
    start_rps: float = 25.0


@dataclass(frozen=True)
class Step:
    """One rate held for one step, as the generator and the cgroup saw it."""

    rate: float
    load: dict[str, Any]  # the generator's figures (modelship.build.capacity.load.run_step)
    wall_seconds: float
    cpu_seconds: float
    memory_peak_bytes: int
    passed: bool
    why: str  # what failed, or "ok"

    @property
    def cpu_share(self) -> float:
        """Server CPU time over wall time: at most the quota when the quota is in force."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def line(self) -> str:
        errors = sum(self.load["errors"].values())
        return (
            f"{self.rate:8.1f} rps  p50 {self.load['p50_ms']:7.2f} ms  p99 "
            f"{self.load['p99_ms']:8.2f} ms  errors {errors:<5} cpu {self.cpu_share:5.2f}  "
            f"mem {self.memory_peak_bytes / 2**20:6.1f} MiB  gen lag p99 "
            f"{self.load['lag_p99_ms']:5.2f} ms  {self.why}"
        )


@dataclass
class Result:
    point: CapacityPoint
    steps: list[Step] = field(default_factory=list)
    limits_read_back: Limits | None = None
    cgroup_version: int = 0
    generator_lag_p99_ms: float = 0.0  # at the rate found
    highest_full_pass_rps: float = 0.0  # above the result only when the machine's speed moved

    @property
    def generator_busy(self) -> bool:
        return self.generator_lag_p99_ms > GENERATOR_LAG_SHARE * self.point.p99_target_ms

    @property
    def unsteady(self) -> bool:
        """Whether a full step passed well above the rate found (and a later one at or below
        it failed): the replica served more or less as the machine's speed moved, so another
        measurement may land that far from this one."""
        return self.highest_full_pass_rps > self.point.max_rps * (1 + REPEAT_SHARE)

    def as_json(self) -> dict[str, Any]:
        return {
            "point": self.point.model_dump(mode="json"),
            "cgroup_version": self.cgroup_version,
            "limits_read_back": {
                "cpu": self.limits_read_back.cpu,
                "memory": self.limits_read_back.memory,
                "memory_bytes": self.limits_read_back.memory_bytes,
            }
            if self.limits_read_back
            else None,
            "generator_lag_p99_ms": self.generator_lag_p99_ms,
            "highest_full_pass_rps": self.highest_full_pass_rps,
            "unsteady": self.unsteady,
            "steps": [
                {
                    "rate": s.rate,
                    "passed": s.passed,
                    "why": s.why,
                    "wall_seconds": round(s.wall_seconds, 3),
                    "cpu_seconds": round(s.cpu_seconds, 3),
                    "memory_peak_bytes": s.memory_peak_bytes,
                    **s.load,
                }
                for s in self.steps
            ],
        }


def cpu_model() -> str:
    """The machine's CPU model name, so a reader knows how far a rate transfers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def split_cores(limits: Limits) -> tuple[set[int], set[int]]:
    """The cores the server may use and the one the generator gets (the last one)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise ConfinementError(
            "measuring needs two cores: one for the server's quota and one for the load "
            "generator (on one core the generator would take the server's CPU)"
        )
    server, generator = set(cores[:-1]), {cores[-1]}
    if limits.cpu_millicores > 1000 * len(server):
        raise ConfinementError(
            f"--cpu {limits.cpu} needs {math.ceil(limits.cpu_millicores / 1000)} cores for the "
            f"server besides the load generator's one; this machine gives {len(cores)} in all"
        )
    return server, generator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ConfinedServer:
    """`modelship serve` running inside a cgroup; `port` is its port on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    cgroup: Cgroup
    port: int
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 5) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").strip().splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is None:
            return
        oom = self.cgroup.oom_kills()
        why = (
            f"the memory limit {self.cgroup.limits.memory} killed it ({oom} OOM kills)"
            if oom
            else f"exit code {self.process.returncode}"
        )
        raise ModelshipError(f"the server stopped: {why}\n{self.log_tail()}")


@contextmanager
def confined_server(
    artifact_dir: Path, limits: Limits, workers: int, cores: set[int], root: Path = CGROUP_ROOT
) -> Iterator[ConfinedServer]:
    """Start the server in a new cgroup, wait until it is ready; stop it and remove the group
    on the way out (also on Ctrl-C)."""
    group = cgroups.create(f"modelship-capacity-{os.getpid()}", limits, root)
    port = _free_port()
    # The server's environment as in the container: its own settings only, and told its memory
    # limit (a container reads it from its cgroup root, which this child group is not).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIP_")}
    env["MODELSHIP_MEMORY_LIMIT_BYTES"] = str(limits.memory_bytes)

    def enter_group() -> None:  # in the child, before exec: the server starts confined
        group.join(os.getpid())
        os.sched_setaffinity(0, cores)

    try:
        with tempfile.TemporaryFile(prefix="modelship-capacity-server-") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "modelship",
                    "serve",
                    "--artifact",
                    str(artifact_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=enter_group,  # noqa: PLW1509 - nothing threaded runs yet
                start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
            )
            server = ConfinedServer(process, group, port, log)
            try:
                _wait_ready(server)
                yield server
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
    finally:
        group.remove()


def _wait_ready(server: ConfinedServer) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            if exc.code == 503 and "does not fit" in body:
                raise ModelshipError(f"the model does not fit --memory: {body}") from None
        except OSError:
            pass
        time.sleep(0.2)
    raise ModelshipError(f"the server was not ready within {READY_SECONDS:.0f} s")


class LoadDriver(Protocol):
    """What the search drives the server with: holds one rate for one step and reports what it
    saw (the keys of modelship.build.capacity.load.run_step: errors, p50_ms, p99_ms, ok,
    sent_seconds, lag_p99_ms). `LoadGenerator` is the product's; bench/capacity.py checks it
    with a paced wrk behind the same search."""

    def step(self, rate: float, seconds: float, timeout: float) -> dict[str, Any]: ...


class LoadGenerator:
    """The open-loop generator's process, pinned to its own core, fed one step at a time."""

    def __init__(self, port: int, requests: list[bytes], cores: set[int]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelship.build.capacity.load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=lambda: _pin(cores, priority=-10),  # noqa: PLW1509
            start_new_session=True,
        )
        self._send(
            {
                "host": "127.0.0.1",
                "port": port,
                "requests": [r.decode("latin-1") for r in requests],
            }
        )

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def step(self, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
        self._send({"rate": rate, "seconds": seconds, "timeout": timeout})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise ModelshipError("the load generator stopped")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pin(cores: set[int], priority: int) -> None:
    """Run on `cores`; ahead of ordinary processes where allowed (root), so a busy machine
    delays the generator's schedule less."""
    os.sched_setaffinity(0, cores)
    with contextlib.suppress(OSError):
        os.nice(priority)


def requests_for(card: ModelCard, port: int, rows: int) -> list[bytes]:
    """Distinct request bodies spread over the training data (not one row, which would flatter
    tree models); single rows go to /predict, larger requests to /predict/batch."""
    import orjson

    from modelship.build.measure import synthetic_rows

    table = synthetic_rows(card, DISTINCT_BODIES * rows, seed=1)
    path = "/predict" if rows == 1 else "/predict/batch"
    bodies = [
        orjson.dumps(table[i] if rows == 1 else table[i * rows : (i + 1) * rows])
        for i in range(DISTINCT_BODIES)
    ]
    return [http_request("127.0.0.1", port, path, body) for body in bodies]


def _judge(load: dict[str, Any], target_ms: float, seconds: float) -> str:
    errors = load["errors"]
    if errors:
        return "errors: " + ", ".join(f"{n} {kind}" for kind, n in errors.items())
    if load["p99_ms"] > target_ms:
        return f"p99 over {target_ms:g} ms"
    if load["sent_seconds"] > seconds * SCHEDULE_SLACK + 0.05:
        return "generator fell behind its schedule"
    return "ok"


def _step(
    server: ConfinedServer, generator: LoadDriver, rate: float, seconds: float, target: float
) -> Step:
    """Hold `rate` for `seconds` and judge it; after a failure, a second for the server to
    work off what was queued."""
    server.check_alive()
    group = server.cgroup
    group.reset_memory_peak()
    cpu_before, wall_before = group.cpu_seconds(), time.monotonic()
    load = generator.step(rate, seconds, 1.0 + 10 * target / 1000)
    wall = time.monotonic() - wall_before
    cpu = group.cpu_seconds() - cpu_before
    why = _judge(load, target, seconds)
    if why != "ok":
        time.sleep(1.0)
    return Step(rate, load, wall, cpu, group.memory_peak_bytes(), why == "ok", why)


def find_capacity(
    server: ConfinedServer,
    generator: LoadDriver,
    plan: Plan,
    rows: int,
    say: Callable[[str], None],
) -> Result:
    """The highest rate that holds p99 under the target with no errors.

    Ramp: double from the start rate in short steps until one fails, and fails again in a full
    step. Then bisect in full steps
    between the highest rate that passed and the lowest that failed until they are within
    RESOLUTION, and run the highest pass once more, in full: if it passes again it is the
    result (a rate near the capacity passes or fails by chance, so one pass decides nothing),
    if it fails it is the new upper bound and the search goes on below it."""
    target = plan.p99_target_ms
    ramp_seconds = max(RAMP_MIN_SECONDS, plan.step_seconds * RAMP_SHARE)
    steps: list[Step] = []
    passed: list[float] = []  # every rate that passed a step, short or full
    full: list[Step] = []  # the full steps that passed
    failed: float | None = None  # the lowest rate that failed a step

    def run(rate: float, seconds: float) -> Step:
        step = _step(server, generator, rate, seconds, target)
        steps.append(step)
        say(step.line())
        if step.passed:
            passed.append(rate)
        return step

    best: Step | None = None
    rate = plan.start_rps / math.sqrt(rows)
    while failed is None and len(steps) < MAX_STEPS:  # the ramp
        # A short step has few requests, so one hiccup of the machine fails it: its failure
        # is held to a full step before it bounds the search.
        if not run(rate, ramp_seconds).passed and not run(rate, plan.step_seconds).passed:
            failed = rate
        rate *= 2
    while failed is not None and len(steps) < MAX_STEPS:
        below = [r for r in passed if r < failed]
        if not below:
            if failed < 1:
                break
            rate = failed / 2
        elif failed <= max(below) * (1 + RESOLUTION):
            rate = max(below)  # the deciding step, again
        else:
            rate = round((max(below) + failed) / 2, 1)
        step = run(rate, plan.step_seconds)
        if not step.passed:
            failed = rate
        elif below and rate == max(below):
            best = step
            break
        else:
            full.append(step)
    if best is None and failed is not None:  # out of steps: the highest full pass, unrepeated
        best = max((s for s in full if s.rate < failed), key=lambda s: s.rate, default=None)
    if best is None:
        raise _no_result(target, passed, failed, steps[-1].why)
    point = CapacityPoint(
        cpu=plan.limits.cpu,
        memory=plan.limits.memory,
        workers=plan.workers,
        rows_per_request=rows,
        p99_target_ms=target,
        max_rps=round(best.rate, 1),
        p99_ms=best.load["p99_ms"],
        cpu_ms_per_request=round(best.cpu_seconds * 1000 / max(1, best.load["ok"]), 3),
        memory_mib=round(best.memory_peak_bytes / 2**20, 1),
    )
    return Result(
        point=point,
        steps=steps,
        limits_read_back=server.cgroup.read_limits(),
        cgroup_version=server.cgroup.version,
        generator_lag_p99_ms=best.load["lag_p99_ms"],
        highest_full_pass_rps=max(s.rate for s in [*full, best]),
    )


def _no_result(
    target: float, passed: list[float], failed: float | None, why: str
) -> ModelshipError:
    """Why the search found no rate: the size cannot serve the target even when idle, or the
    server served less as the search went on (rates that passed failed later)."""
    if passed and failed is not None:
        return ModelshipError(
            f"no rate held p99 under {target:g} ms with no errors twice: up to "
            f"{max(passed):g} requests/s passed a step, and then {failed:g} failed (the last "
            f"step: {why}); the server served less as the search went on, so its result would "
            "not repeat: measure again on a quiet machine, and see docs/capacity.md#measured"
        )
    return ModelshipError(
        f"no rate held p99 under {target:g} ms with no errors (the last step: {why}); the "
        "target is below what this size serves even when idle"
    )


def measure(
    artifact_dir: Path, plan: Plan, say: Callable[[str], None], root: Path = CGROUP_ROOT
) -> list[Result]:
    """Start the confined server once and find the capacity for each request size."""
    from modelship.model import artifact

    card = artifact.load(artifact_dir).card
    server_cores, generator_cores = split_cores(plan.limits)
    results = []
    with confined_server(artifact_dir, plan.limits, plan.workers, server_cores, root) as server:
        say(
            f"server ready in a cgroup v{server.cgroup.version} group: cpu {plan.limits.cpu}, "
            f"memory {plan.limits.memory}, {plan.workers} worker(s) on core(s) "
            f"{','.join(map(str, sorted(server_cores)))}; load generator on core "
            f"{','.join(map(str, sorted(generator_cores)))}"
        )
        for rows in plan.rows_per_request:
            say(f"{rows} row(s) per request, p99 target {plan.p99_target_ms:g} ms:")
            generator = LoadGenerator(
                server.port, requests_for(card, server.port, rows), generator_cores
            )
            try:
                results.append(find_capacity(server, generator, plan, rows, say))
            finally:
                generator.close()
    return results


def merged(old: Capacity | None, points: list[CapacityPoint]) -> Capacity:
    """The card's capacity with `points` added, replacing earlier points of the same size,
    workers and request size measured on this CPU (points from another CPU model are dropped:
    the card names one machine)."""
    model = cpu_model()
    keep = [] if old is None or old.cpu_model != model else list(old.points)
    new_keys = {_key(p) for p in points}
    return Capacity(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        cpu_model=model,
        points=[p for p in keep if _key(p) not in new_keys] + points,
    )


def _key(point: CapacityPoint) -> tuple[str, str, int, int]:
    """What makes two points measurements of the same thing."""
    return (point.cpu, point.memory, point.workers, point.rows_per_request)


def write_to_card(artifact_dir: Path, points: list[CapacityPoint]) -> ModelCard:
    """Record the points in the artifact's model card and its report page's capacity box (the
    model itself, and so its version, is unchanged)."""
    import hashlib

    from modelship.build.report.page import with_capacity
    from modelship.model import artifact

    loaded = artifact.load(artifact_dir)
    card = loaded.card
    capacity = merged(card.capacity, points)
    update: dict[str, Any] = {"capacity": capacity}
    if card.report is not None and (page := artifact_dir / card.report.page).is_file():
        html = with_capacity(page.read_text(encoding="utf-8"), capacity).encode()
        page.write_bytes(html)
        sha = hashlib.sha256(html).hexdigest()
        update["report"] = card.report.model_copy(update={"page_sha256": sha})
    card = card.model_copy(update=update)
    artifact.save(artifact_dir, card, loaded.onnx_bytes)
    return card


def can_confine(root: Path = CGROUP_ROOT) -> str | None:
    """Why this machine cannot measure capacity, or None when it can."""
    if cgroups.layout(root) == 0:
        return f"no cgroup hierarchy at {root}"
    if os.geteuid() != 0:
        return "confining the server in a cgroup needs root"
    if len(os.sched_getaffinity(0)) < 2:
        return "measuring needs two cores (the server's and the load generator's)"
    return None


STEP_PLAN = Plan(limits=Limits(500, 512 * 2**20), p99_target_ms=100.0, step_seconds=2.0)


def measure_step(artifact_dir: Path, say: Callable[[str], None]) -> ModelCard | None:
    """Training's and import's capacity step: the default container size (the stacks'
    defaults) with short steps; skipped, with one line saying why, where the machine cannot
    confine a server or the measurement fails (the model is good either way)."""
    plan = STEP_PLAN
    reason = can_confine()
    if reason is not None:
        say(f"Capacity not measured: {reason} (modelship capacity measures it later)")
        return None
    say(
        f"Measuring capacity: one replica at {plan.limits.cpu} CPU, {plan.limits.memory}, "
        f"p99 {plan.p99_target_ms:g} ms (--no-capacity skips it)"
    )
    started = time.monotonic()
    try:
        (result,) = measure(artifact_dir, plan, lambda line: None)
    except ModelshipError as exc:
        say(f"Capacity not measured: {exc.message}")
        return None
    say(f"  {result.point.describe()} ({time.monotonic() - started:.0f} s)")
    if result.unsteady:
        say(
            f"  the machine's speed moved during it (a full step passed at "
            f"{result.highest_full_pass_rps:g} requests/s): `modelship capacity` measures again"
        )
    return write_to_card(artifact_dir, [result.point])
