"""Capacity of one confined replica, measured as `modelship capacity` does, cross-checked with wrk.

    sudo -E uv run python -m bench.capacity [--repeat 3] [--out DIR]

For the default insurance model and a 26-class model (bench/training.py's table), each at
500m/512Mi and 1/1Gi: `--repeat` times, starts the server in a cgroup of its own
(modelship.build.capacity) and finds the highest open-loop rate with p99 under 100 ms and no
errors (the spread shows repeatability). Then the independent check: as many runs of the
same search with wrk sending on a schedule (`PacedWrk`), each in a fresh confined server, and
plain `wrk` (closed loop) in one more for the saturation rate, all on the generator's core.
Prints one table (docs/capacity.md#measured), writes the median point of each size into the
model's card and every figure into `--points` (docs/capacity-points.json: the entries of the
models and sizes measured are replaced, the others kept), from which
`uv run python -m tests.infra.capacity_doc --write` regenerates docs/capacity.md's tables.
Needs root (cgroups) and two cores; about a minute per run, so ~30 minutes with the defaults.
Trains both models first if --out has none.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, closing, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.training import many_classes_table
from modelship.build.capacity.cgroup import Limits, parse_cpu, parse_memory
from modelship.build.capacity.load import connections_for
from modelship.build.capacity.run import (
    ConfinedServer,
    LoadDriver,
    LoadGenerator,
    Plan,
    Result,
    confined_server,
    cpu_model,
    find_capacity,
    requests_for,
    split_cores,
    write_to_card,
)
from modelship.build.measure import synthetic_rows
from modelship.errors import ModelshipError
from modelship.model import artifact

SIZES = ("500m/512Mi", "1/1Gi")
POINTS = Path(__file__).resolve().parents[1] / "docs" / "capacity-points.json"
WRK_SECONDS = 10
# Per worker: below the 32 in flight a worker always admits, so wrk sees no 503 and measures the
# saturation rate (its p99 is then about one CFS pause, docs/capacity.md#measured).
WRK_CONNECTIONS = 8


# Before each size's runs, a fixed loop of Python on the server's core, timed in windows as long
# as a step: how steady the machine itself is, which bounds how well any rate found on it repeats.
STEADINESS_WINDOWS = 6


def machine_steadiness(core: int, window_seconds: float) -> tuple[float, float]:
    """The slowest and the fastest window of a fixed CPU loop on `core`, over the median window:
    near 1 on a quiet machine. On a virtual machine the host's other guests and the CPU's boost
    clock move it, with no other process running here, and a replica's rate moves with it."""
    kept = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        loops = []
        for _ in range(STEADINESS_WINDOWS):
            count, stop = 0, time.perf_counter() + window_seconds
            while time.perf_counter() < stop:
                sum(i * i for i in range(2_000))
                count += 1
            loops.append(count)
    finally:
        os.sched_setaffinity(0, kept)
    middle = statistics.median(loops)
    return round(min(loops) / middle, 2), round(max(loops) / middle, 2)


def _train(out: Path, name: str) -> Path:
    model = out / name
    if artifact.exists(model):
        return model
    command = [sys.executable, "-m", "modelship", "train", "--output", str(model), "--no-capacity"]
    if name == "letters":
        data = out / "letters.csv"
        many_classes_table().to_csv(data, index=False)
        command += ["--data", str(data), "--target", "letter"]
    print(f"training {name}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    return model


def _wrk_script(bodies: list[bytes], extra: str = "") -> str:
    """wrk's Lua: POST the bodies in turn to /predict, plus `extra` (more Lua)."""
    listed = ",\n".join(f"[==[{body.decode()}]==]" for body in bodies)
    return f"""
local bodies = {{{listed}}}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
{extra}
"""


def _run_wrk(script: str, core: int, arguments: list[str], url: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        done = subprocess.run(
            ["taskset", "-c", str(core), "wrk", "-t1", *arguments, "-s", file.name, url],
            capture_output=True,
            text=True,
            check=True,
        )
    return done.stdout


def _wrk(url: str, bodies: list[bytes], core: int, connections: int) -> dict[str, float]:
    """wrk's closed loop: its saturation rate, p99 and non-2xx count."""
    out = _run_wrk(
        _wrk_script(bodies), core, [f"-c{connections}", f"-d{WRK_SECONDS}s", "--latency"], url
    )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rate,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


# wrk paced to a schedule: its `delay()` runs before each request and hands out the thread's
# next send time, `interval` apart (LuaJIT's ffi reads the monotonic clock), so requests leave
# at the rate asked whatever the answers do, as long as a connection is free. With each
# connection sending about once every USER_SECONDS (as many connections as the generator
# warms: `connections_for`), most are idle at any moment: a pause
# of the server (a CFS period's throttle) does not stop the schedule, and its queue shows in
# the latencies. wrk counts latency from the send, not the due time, so a step that sent
# fewer than PACED_SCHEDULE_SHARE of its requests fails as behind its schedule. wrk opens all
# its connections at once when it starts (where the generator keeps its pool from step to
# step): the schedule starts PACED_WARMUP_SECONDS later, so the server accepts them
# before the first request is due rather than while requests queue.
PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} paced_timespec;
int clock_gettime(int clock, paced_timespec *now);
]]
local now = ffi.new("paced_timespec")
local function ms()
  ffi.C.clock_gettime(1, now)
  return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
end
local interval = {interval_ms}
local warmup = {warmup_ms}
local due = nil
delay = function()
  local t = ms()
  due = (due or t + warmup - interval) + interval
  return math.max(0, math.floor(due - t + 0.5))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PACED %d %d %d %d %d %d %d %.3f %.3f\\n", summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""
PACED_SCHEDULE_SHARE = 0.95
PACED_WARMUP_SECONDS = 1


class PacedWrk:
    """wrk holding a rate for a step, as the search's `LoadDriver`: the same question as the
    open-loop generator (p99 at a rate), asked with another tool's sockets and clocks."""

    def __init__(self, url: str, bodies: list[bytes], core: int) -> None:
        self.url, self.bodies, self.core = url, bodies, core

    def step(self, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
        whole = max(1, round(seconds))  # wrk's -d takes whole seconds
        connections = connections_for(rate)
        paced = PACED_LUA.format(interval_ms=1000 / rate, warmup_ms=1000 * PACED_WARMUP_SECONDS)
        script = _wrk_script(self.bodies, paced)
        arguments = [
            f"-c{connections}",
            f"-d{whole + PACED_WARMUP_SECONDS}s",
            f"--timeout={math.ceil(timeout)}s",
        ]
        out = _run_wrk(script, self.core, arguments, self.url)
        found = re.search(r"^PACED (.*)$", out, re.MULTILINE)
        if found is None:
            raise ModelshipError(f"wrk printed no summary: {out[-500:]}")
        fields = found.group(1).split()
        answered, micros = int(fields[0]), int(fields[1])
        connect, read, write, status, timed_out = map(int, fields[2:7])
        errors = {
            kind: n
            for kind, n in {
                "connect errors": connect,
                "read errors": read,
                "write errors": write,
                "non-2xx answers": status,
                "no answer within timeout": timed_out,
            }.items()
            if n
        }
        due = rate * (micros / 1e6 - PACED_WARMUP_SECONDS)
        if answered < PACED_SCHEDULE_SHARE * due:
            errors["behind its schedule (answered of due)"] = round(due - answered)
        return {
            "rate": rate,
            "ok": answered - status,
            "errors": errors,
            "p50_ms": float(fields[7]),
            "p99_ms": float(fields[8]),
            "sent_seconds": whole,  # wrk stops at its duration; lateness is the check above
            "lag_p99_ms": 0.0,
            "connections": connections,
        }


def _search(
    model: Path,
    plan: Plan,
    cores: set[int],
    label: str,
    driver: Callable[[ConfinedServer], AbstractContextManager[LoadDriver]],
) -> Result | None:
    """One search in a fresh confined server, driven by what `driver` makes for it; None when
    it found no rate (the reason is printed)."""
    with confined_server(model, plan.limits, plan.workers, cores) as server, driver(server) as load:
        try:
            result = find_capacity(
                server, load, plan, 1, lambda line: print(f"{label}: {line}", file=sys.stderr)
            )
        except ModelshipError as exc:  # a run with no result counts against the spread
            print(f"{label}: no result: {exc}", file=sys.stderr)
            return None
    passed = result.highest_full_pass_rps
    unsteady = f" (a full step passed at {passed:g}: unsteady)" if result.unsteady else ""
    print(f"{label}: {result.point.max_rps:g} rps{unsteady}", file=sys.stderr)
    return result


def _rate(result: Result | None) -> float:
    """A run's rate; 0 for a run that found none."""
    return result.point.max_rps if result else 0.0


def _median(results: list[Result | None]) -> Result | None:
    """The median run; a run without a result ranks lowest."""
    return sorted(results, key=_rate)[len(results) // 2]


def _measure(model: Path, size: str, repeat: int, step_seconds: float) -> dict[str, object] | None:
    """`repeat` runs and the wrk check of one size, or None when no run found a rate that
    held (each run's reason is printed; the other sizes are still measured)."""
    cpu, memory = size.split("/")
    limits = Limits(parse_cpu(cpu), parse_memory(memory))
    plan = Plan(limits=limits, p99_target_ms=100.0, step_seconds=step_seconds)
    card = artifact.load(model).card
    server_cores, (generator_core,) = split_cores(limits)
    steadiness = machine_steadiness(min(server_cores), step_seconds)
    print(
        f"{model.name} {size}: the machine's speed before the runs, {step_seconds:g} s windows "
        f"of a fixed loop: {steadiness[0]:.2f} to {steadiness[1]:.2f} of their median",
        file=sys.stderr,
    )
    # Each run and the wrk check in a server of its own, as each `modelship capacity` starts
    # one: a server kept across runs carries the last run's state (its feedback join full of
    # answers, its drift windows) into the next, and the runs were not independent.
    results = [
        _search(
            model,
            plan,
            server_cores,
            f"{model.name} {size} run {run + 1}",
            lambda server: closing(
                LoadGenerator(server.port, requests_for(card, server.port, 1), {generator_core})
            ),
        )
        for run in range(repeat)
    ]
    median = _median(results)
    if median is None:
        print(f"{model.name} {size}: most runs found no rate, nothing written", file=sys.stderr)
        return None
    bodies = [orjson_dumps(row) for row in synthetic_rows(card, 64, seed=1)]
    paced = [
        _search(
            model,
            plan,
            server_cores,
            f"{model.name} {size} wrk paced {run + 1}",
            lambda server: nullcontext(PacedWrk(server.url, bodies, generator_core)),
        )
        for run in range(repeat)
    ]
    paced_median = _median(paced)
    wrk_paced = {
        "max_rps": _rate(paced_median),
        "p99_ms": paced_median.point.p99_ms if paced_median else 0.0,
        "runs": [_rate(r) for r in paced],
    }
    with confined_server(model, limits, plan.workers, server_cores) as server:
        wrk = _wrk(server.url, bodies, generator_core, WRK_CONNECTIONS * plan.workers)
    rates = sorted(_rate(r) for r in results)
    write_to_card(model, [median.point])
    return {
        "model": model.name,
        "size": size,
        "rates": rates,
        "median": median.point.max_rps,
        "spread": (rates[-1] - rates[0]) / statistics.median(rates) if rates[0] else float("nan"),
        "p99_ms": median.point.p99_ms,
        "cpu_ms": median.point.cpu_ms_per_request,
        "memory_mib": median.point.memory_mib,
        "lag_p99_ms": median.generator_lag_p99_ms,
        "wrk": wrk,
        "wrk_paced": wrk_paced,
        "record": {
            "model": model.name,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu_model": cpu_model(),
            "cores": os.cpu_count() or 1,
            "load_average": round(os.getloadavg()[0], 1),
            "step_seconds": step_seconds,
            "point": median.point.model_dump(),
            "runs": [_rate(r) for r in results],
            "generator_lag_p99_ms": round(median.generator_lag_p99_ms, 2),
            "machine_steadiness": list(steadiness),
            "wrk": wrk,
            "wrk_paced": wrk_paced,
        },
    }


def save_points(path: Path, records: list[dict[str, object]]) -> None:
    """Replace the entries of the measured models and sizes in `path`, keep the others."""

    def key(record: dict[str, object]) -> tuple[object, ...]:
        point = record["point"]
        assert isinstance(point, dict)
        return (record["model"], point["cpu"], point["memory"], point["workers"])

    kept = json.loads(path.read_text())["measurements"] if path.exists() else []
    fresh = {key(r): r for r in records}
    merged = [fresh.pop(key(r), r) for r in kept] + list(fresh.values())
    path.write_text(json.dumps({"measurements": merged}, indent=2) + "\n")


def orjson_dumps(row: dict[str, object]) -> bytes:
    import orjson

    return orjson.dumps(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "modelship-bench-capacity"
    )
    parser.add_argument("--models", default="insurance,letters", help="insurance and/or letters")
    parser.add_argument("--sizes", default=",".join(SIZES), help="CPU/MEMORY pairs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (the spread)")
    parser.add_argument("--step-seconds", type=float, default=4.0)
    parser.add_argument(
        "--points", type=Path, default=POINTS, help="the measurements file to update"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    for name in args.models.split(","):
        model = _train(args.out, name)
        for size in args.sizes.split(","):
            row = _measure(model, size, args.repeat, args.step_seconds)
            if row is None:
                continue
            record = row.pop("record")
            assert isinstance(record, dict)
            rows.append(row)
            records.append(record)
    print(f"\nCPU: {cpu_model()}, load average {os.getloadavg()[0]:.1f}\n")
    print(
        "| model | cpu/memory | open-loop rate, p99 <= 100 ms (runs) | spread | p99 | CPU per "
        "request | memory | generator lag p99 | wrk paced rate (runs; p99) | open loop / wrk paced "
        "| wrk saturation (p99, non-2xx) | open loop / saturation |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        wrk, paced = r["wrk"], r["wrk_paced"]
        assert isinstance(wrk, dict) and isinstance(paced, dict)
        rates = ", ".join(f"{x:g}" for x in r["rates"])  # type: ignore[attr-defined]
        print(
            f"| {r['model']} | {r['size']} | {r['median']:g} ({rates}) | {r['spread']:.0%} | "
            f"{r['p99_ms']:.1f} ms | {r['cpu_ms']:.2f} ms | {r['memory_mib']:.0f} MiB | "
            f"{r['lag_p99_ms']:.2f} ms | {paced['max_rps']:g} "
            f"({', '.join(f'{x:g}' for x in paced['runs'])}; "
            f"{paced['p99_ms']:.1f} ms) | "
            f"{r['median'] / paced['max_rps'] if paced['max_rps'] else float('inf'):.2f} | "
            f"{wrk['rps']:.0f} ({wrk['p99_ms']:.1f} ms, {wrk['non_2xx']:.0f}) | "
            f"{r['median'] / wrk['rps']:.2f} |"
        )
    save_points(args.points, records)
    print(f"\nwrote {args.points}; now: uv run python -m tests.infra.capacity_doc --write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
