"""Capacity of one confined replica, measured as `modelship capacity` does, cross-checked with wrk.

    sudo -E uv run python -m bench.capacity [--repeat 3] [--out DIR]

For the default insurance model and a 26-class model (bench/training.py's table), each at
500m/512Mi and 1/1Gi: `--repeat` times, starts the server in a cgroup of its own
(modelship.build.capacity) and finds the highest open-loop rate with p99 under 100 ms and no
errors (the spread shows repeatability), then drives one more confined server of that size
with `wrk` (closed loop, its own core) for the independent saturation rate. Prints one table
(docs/capacity.md#measured), writes the median point of each size into the model's card and
every figure into `--points` (docs/capacity-points.json: the entries of the models and sizes
measured are replaced, the others kept), from which
`uv run python -m tests.infra.capacity_doc --write` regenerates docs/capacity.md's tables.
Needs root (cgroups) and two cores; about a minute per run, so ~13 minutes with the defaults.
Trains both models first if --out has none.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.training import many_classes_table
from modelship.build.capacity.cgroup import Limits, parse_cpu, parse_memory
from modelship.build.capacity.run import (
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


def _wrk(url: str, bodies: list[bytes], core: int, connections: int) -> dict[str, float]:
    """wrk posting the same bodies in turn; its rate, p99 and non-2xx count."""
    listed = ",\n".join(f"[==[{body.decode()}]==]" for body in bodies)
    script = f"""
local bodies = {{{listed}}}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        done = subprocess.run(
            [
                "taskset",
                "-c",
                str(core),
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{WRK_SECONDS}s",
                "--latency",
                "-s",
                file.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", done.stdout)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    return {
        "rps": rate,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def _measure(model: Path, size: str, repeat: int, step_seconds: float) -> dict[str, object] | None:
    """`repeat` runs and the wrk check of one size, or None when no run found a rate that
    held (each run's reason is printed; the other sizes are still measured)."""
    cpu, memory = size.split("/")
    limits = Limits(parse_cpu(cpu), parse_memory(memory))
    plan = Plan(limits=limits, p99_target_ms=100.0, step_seconds=step_seconds)
    card = artifact.load(model).card
    server_cores, (generator_core,) = split_cores(limits)
    results: list[Result | None] = []
    # Each run and the wrk check in a server of its own, as each `modelship capacity` starts
    # one: a server kept across runs carries the last run's state (its feedback join full of
    # answers, its drift windows) into the next, and the runs were not independent.
    for run in range(repeat):
        with confined_server(model, limits, plan.workers, server_cores) as server:
            generator = LoadGenerator(
                server.port, requests_for(card, server.port, 1), {generator_core}
            )
            try:
                result: Result | None = find_capacity(
                    server, generator, plan, 1, lambda line: print(line, file=sys.stderr)
                )
            except ModelshipError as exc:  # a run with no result counts against the spread
                print(f"{model.name} {size} run {run + 1}: no result: {exc}", file=sys.stderr)
                result = None
            finally:
                generator.close()
        if result is not None:
            print(
                f"{model.name} {size} run {run + 1}: {result.point.max_rps:g} rps", file=sys.stderr
            )
        results.append(result)
    # The median run; a run without a result ranks lowest (its rate in the table is 0).
    median = sorted(results, key=lambda r: r.point.max_rps if r else 0.0)[len(results) // 2]
    if median is None:
        print(f"{model.name} {size}: most runs found no rate, nothing written", file=sys.stderr)
        return None
    with confined_server(model, limits, plan.workers, server_cores) as server:
        bodies = [orjson_dumps(row) for row in synthetic_rows(card, 64, seed=1)]
        wrk = _wrk(server.url, bodies, generator_core, WRK_CONNECTIONS * plan.workers)
    rates = sorted(r.point.max_rps if r else 0.0 for r in results)
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
        "record": {
            "model": model.name,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu_model": cpu_model(),
            "cores": os.cpu_count() or 1,
            "load_average": round(os.getloadavg()[0], 1),
            "step_seconds": step_seconds,
            "point": median.point.model_dump(),
            "runs": [r.point.max_rps if r else 0.0 for r in results],
            "generator_lag_p99_ms": round(median.generator_lag_p99_ms, 2),
            "wrk": wrk,
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
        "request | memory | generator lag p99 | wrk rate (p99, non-2xx) | open loop / wrk |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        wrk = r["wrk"]
        assert isinstance(wrk, dict)
        rates = ", ".join(f"{x:g}" for x in r["rates"])  # type: ignore[attr-defined]
        print(
            f"| {r['model']} | {r['size']} | {r['median']:g} ({rates}) | {r['spread']:.0%} | "
            f"{r['p99_ms']:.1f} ms | {r['cpu_ms']:.2f} ms | {r['memory_mib']:.0f} MiB | "
            f"{r['lag_p99_ms']:.2f} ms | {wrk['rps']:.0f} ({wrk['p99_ms']:.1f} ms, "
            f"{wrk['non_2xx']:.0f}) | {r['median'] / wrk['rps']:.2f} |"
        )
    save_points(args.points, records)
    print(f"\nwrote {args.points}; now: uv run python -m tests.infra.capacity_doc --write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
