"""What a rollout costs the answers: no candidate, shadow and canary 10% in one run, over HTTP.

    uv run python bench/rollout.py                   # 2 workers, 10 s per load level
    uv run python bench/rollout.py --seconds 1       # smoke run (numbers meaningless)

Starts `modelship serve` on the insurance model of bench/run.py three times (no candidate; a
candidate in shadow; canary 10%), the candidate another estimator on the same data (cached beside
the model), and with wrk measures single-row /predict at 32 connections (requests per second,
p50, p99, server CPU per request) and at 2,000 connections (overload: p99 and how many were shed).
The gates are kept from deciding (minimum sample = window = 1,000,000 requests), so the
candidate scores off the path for the whole run as it does while a rollout bakes. Needs a quiet
machine: the load generator shares the cores with the server (bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository, for `bench` when run as a script

from bench import run as http_bench  # noqa: E402 - after the path above

CLIENTS = 32
UNDECIDED = {"MODELSHIP_ROLLOUT_WINDOW": "1000000", "MODELSHIP_ROLLOUT_MIN_REQUESTS": "1000000"}


def candidate_artifact(cache: Path) -> Path:
    """Another estimator on the same data: a candidate the gates would promote."""
    out = cache / "rollout-candidate"
    if not (out / "model-card.json").is_file():
        from modelship.build.training.data import BUNDLED_DATA
        from modelship.build.training.options import TrainOptions
        from modelship.build.training.train import train

        options = TrainOptions(
            data=BUNDLED_DATA,
            target="charges",
            output=out,
            model="hist_gradient_boosting",
            seed=7,
        )
        train(options, lambda _: None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per load level")
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench-cache")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    model = http_bench.prepare_model(args.cache, 1_000)
    candidate = candidate_artifact(args.cache)
    body = json.dumps(model["card"]["examples"][0]).encode()
    logs = Path(tempfile.mkdtemp(prefix="modelship-bench-rollout-"))
    sides = {
        "no candidate": (),
        "shadow": ("--candidate", str(candidate), "--candidate-traffic", "shadow"),
        "canary 10%": ("--candidate", str(candidate), "--candidate-traffic", "10"),
    }
    print(
        f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}, "
        f"{args.workers} workers, {args.seconds:g} s per level; logs in {logs}"
    )
    rows = []
    for name, extra in sides.items():
        server = http_bench.modelship_serve(
            name.replace(" ", "-").replace("%", "pct"),
            model["artifact"],
            body,
            {"MODELSHIP_ACCESS_LOG": "false", **UNDECIDED},
            extra=extra,
        )
        script = http_bench.wrk_script(logs / f"{server.name}.lua", server)
        with http_bench.running(server, args.workers, logs) as (port, pid, _):
            http_bench.run_wrk(port, "/predict", script, CLIENTS, 1)  # warm up
            cpu = http_bench.tree_cpu(pid)
            load = http_bench.run_wrk(port, "/predict", script, CLIENTS, args.seconds)
            cpu = http_bench.tree_cpu(pid) - cpu
            shed = http_bench.shed_count(port) or 0.0
            over = http_bench.run_wrk(
                port, "/predict", script, http_bench.OVERLOAD_CLIENTS, args.seconds, threads=2
            )
            shed = (http_bench.shed_count(port) or 0.0) - shed
            _, answer = http_bench.request(port, "GET", "/metrics")
            unscored = sum(
                float(line.rsplit(" ", 1)[1])
                for line in answer.decode().splitlines()
                if line.startswith("modelship_rollout_unscored_total")
            )
        rows.append((name, load, cpu / max(load.rps * args.seconds, 1) * 1e6, over, shed, unscored))
    base = rows[0][1]
    print(
        f"\n| side | req/s @{CLIENTS} | p50 ms | p50 vs none | p99 ms | server CPU µs/req | "
        f"p99 ms @{http_bench.OVERLOAD_CLIENTS} | errors @{http_bench.OVERLOAD_CLIENTS} | "
        "unscored by the other version |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, load, cpu_us, over, _, unscored in rows:
        slower = load.p50_ms / base.p50_ms - 1
        print(
            f"| {name} | {load.rps:,.0f} | {load.p50_ms:.2f} | {slower:+.1%} "
            f"| {load.p99_ms:.2f} | {cpu_us:.0f} | {over.p99_ms:.0f} | {over.errors:,} "
            f"| {unscored:,.0f} |"
        )
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
