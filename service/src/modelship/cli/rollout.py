"""`modelship rollout status|wait URL`: a running server's rollout verdict, as an exit code.

The deploy workflow runs these between `pulumi up` with a candidate and the promotion (or the
removal) of the candidate: 0 promote, 1 abort, 3 still baking (or, for `wait`, timed out); 2 when
the server cannot be asked (unreachable, refused, or no rollout on it)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from modelship.errors import ModelshipError

EXIT = {"promote": 0, "abort": 1, "baking": 3}
DURATION_HELP = "seconds, or with a unit: 90s, 15m, 1h"


def duration(text: str) -> float:
    """Seconds from `600`, `90s`, `15m` or `1h`."""
    value = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:])
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: expected {DURATION_HELP}")
    return seconds


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship rollout status URL` and `modelship rollout wait URL --timeout D`."""
    rollout = commands.add_parser(
        "rollout",
        help="a running server's rollout verdict (exit 0 promote, 1 abort, 3 baking)",
        description="Ask a server serving a candidate (serve --candidate) for its rollout: the "
        "gates and the verdict. Exit code 0 promote, 1 abort, 3 baking (or timed out), 2 when "
        "the server cannot be asked.",
    )
    actions = rollout.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="print the verdict and the gates once")
    wait = actions.add_parser(
        "wait", help="poll until the verdict is promote or abort, or the timeout passes"
    )
    wait.add_argument(
        "--timeout", type=duration, required=True, help=f"how long to wait ({DURATION_HELP})"
    )
    wait.add_argument(
        "--interval",
        type=duration,
        default=5.0,
        help=f"between polls (default 5s; {DURATION_HELP})",
    )
    for action in (status, wait):
        action.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
        action.add_argument(
            "--api-key",
            default=os.environ.get("MODELSHIP_API_KEY"),
            help="the server's API key (default: MODELSHIP_API_KEY)",
        )
        action.add_argument("--json", action="store_true", help="print GET /rollout's JSON")


def run(args: argparse.Namespace) -> int:
    from modelship.quality import ServerUnavailable, server_json  # not serving: cli/labels.py

    url = f"{args.url.rstrip('/')}/rollout"
    deadline = time.monotonic() + args.timeout if args.action == "wait" else 0.0
    while True:
        try:
            report = server_json(url, args.api_key)
        except ServerUnavailable as exc:
            # `wait` rides out a server that restarts (a deploy replacing it) until its timeout.
            if args.action == "status" or time.monotonic() >= deadline:
                raise
            print(f"modelship: {exc.message}; asking again", file=sys.stderr)
            time.sleep(min(args.interval, max(deadline - time.monotonic(), 0.0)))
            continue
        verdict = report.get("verdict")
        if verdict not in EXIT:
            raise ModelshipError(f"{url} answered no verdict: {json.dumps(report)[:300]}")
        if args.action == "status" or verdict != "baking" or time.monotonic() >= deadline:
            break
        time.sleep(min(args.interval, max(deadline - time.monotonic(), 0.0)))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.action == "wait" and verdict == "baking":
        print(
            f"modelship: timed out after {args.timeout:g} s: the rollout is still baking "
            f"({report['window']['compared']} of {report['window']['min_requests']} compared "
            "requests needed)",
            file=sys.stderr,
        )
    return EXIT[verdict]


def format_report(report: dict[str, Any]) -> str:
    """The verdict, then one line per gate."""
    traffic = report["traffic"]
    mode = "shadow" if report["mode"] == "shadow" else f"canary {traffic['candidate_percent']}%"
    window = report["window"]
    lines = [
        f"verdict: {report['verdict']} (candidate {report['candidate']['version']} beside primary "
        f"{report['primary']['version']}, {mode}, {window['compared']} compared requests of a "
        f"{window['requests']} window, {window['min_requests']} needed)"
    ]
    for gate in report["gates"]:
        value = "-" if gate["value"] is None else f"{gate['value']:.4g}"
        lines.append(
            f"  {gate['state']:<17} {gate['gate']:<21} {value:>9} (threshold "
            f"{gate['threshold']:g}): {gate['reads']}"
        )
    return "\n".join(lines)
