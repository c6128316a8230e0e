"""`modelship capacity`: measure what one confined replica of a model serves, into its card."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from modelship.contracts.settings import DEFAULT_ARTIFACT
from modelship.errors import ModelshipError

DEFAULT_CPU, DEFAULT_MEMORY, DEFAULT_P99_MS = "500m", "512Mi", 100.0


def _rows(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected rows per request, comma-separated positive integers (like 10,100), "
            f"got {text!r}"
        )
    return sizes


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship capacity`."""
    command = commands.add_parser(
        "capacity",
        help="measure the requests per second one confined replica serves",
        description="Start the server (modelship serve) confined to a CPU quota and a memory "
        "limit in a cgroup, as Kubernetes and ECS confine a container, drive it with an "
        "open-loop load generator at rising rates, and report the highest rate that keeps p99 "
        "latency under the target with no errors, the CPU per request and the memory. The "
        "result goes into the model card (capacity), which the deploy stacks read. Needs root "
        "(a cgroup) and two cores (one for the load generator); takes about a minute per "
        "request size.",
    )
    command.add_argument("artifact", type=Path, nargs="?", default=DEFAULT_ARTIFACT)
    command.add_argument(
        "--cpu",
        default=DEFAULT_CPU,
        help=f"CPU quota, as Kubernetes writes it (default {DEFAULT_CPU})",
    )
    command.add_argument(
        "--memory",
        default=DEFAULT_MEMORY,
        help=f"memory limit, as Kubernetes writes it (default {DEFAULT_MEMORY})",
    )
    command.add_argument(
        "--p99-ms",
        type=_positive,
        default=DEFAULT_P99_MS,
        help=f"p99 latency target in milliseconds (default {DEFAULT_P99_MS:g})",
    )
    command.add_argument("--workers", type=int, default=1, help="server workers (default 1)")
    command.add_argument(
        "--batch-mix",
        type=_rows,
        default=[],
        metavar="ROWS[,ROWS...]",
        help="also measure requests of this many rows each (POST /predict/batch), one point "
        "per size",
    )
    command.add_argument(
        "--step-seconds",
        type=_positive,
        default=4.0,
        help="how long each rate of the bisection is held (default 4; the ramp holds a quarter "
        "of it; shorter is faster and noisier)",
    )
    command.add_argument("--json", action="store_true", help="print every step as JSON")
    command.add_argument(
        "--no-write", action="store_true", help="print the result, leave the model card as it is"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server and removes the cgroup, as Ctrl-C does


def run(args: argparse.Namespace) -> int:
    from modelship.build.capacity import cgroup
    from modelship.build.capacity.run import Plan, measure, write_to_card
    from modelship.model import artifact

    limits = cgroup.Limits(cgroup.parse_cpu(args.cpu), cgroup.parse_memory(args.memory))
    if not 1 <= args.workers <= 64:
        raise ModelshipError(f"--workers {args.workers}: allowed 1 to 64")
    artifact.load(args.artifact)  # a missing or broken artifact fails before any set-up
    plan = Plan(
        limits=limits,
        p99_target_ms=args.p99_ms,
        workers=args.workers,
        rows_per_request=tuple(dict.fromkeys([1, *args.batch_mix])),
        step_seconds=args.step_seconds,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    results = measure(args.artifact, plan, lambda line: print(line, file=sys.stderr, flush=True))
    if not args.no_write:
        write_to_card(args.artifact, [r.point for r in results])
    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=2))
        return 0
    for result in results:
        print(result.point.describe())
        print(f"  load generator lag p99 {result.generator_lag_p99_ms:g} ms at that rate")
        if result.generator_busy:
            print(
                "  warning: the load generator ran late (a busy machine): latency counts from "
                "its schedule, so the rate found is a lower bound; measure on a quiet machine"
            )
        if result.unsteady:
            above = result.highest_full_pass_rps / result.point.max_rps - 1
            print(
                f"  warning: a full step at {result.highest_full_pass_rps:g} requests/s passed "
                f"too ({above:.0%} above), and later steps at or below it failed: the machine's "
                "speed moved during the measurement (other virtual machines on its host, its "
                "CPU's boost clock), so another measurement may land that far from this one; "
                "measure again on a quieter machine"
            )
    if not args.no_write:
        print(f"written to {args.artifact / artifact.CARD_FILE}")
    return 0
