"""`modelship feedback` (labels sent to a running server) and `modelship quality` (captured rows
joined with labels offline, per model version and per day)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship feedback URL LABELS` and `modelship quality STORE --labels LABELS`."""
    feedback = commands.add_parser(
        "feedback",
        help="send ground-truth labels to a running server",
        description="POST a CSV of id,label (prediction ids from earlier answers) to a server's "
        "/feedback, in parts; prints what became of them (joined, unknown, expired, duplicate, "
        "invalid). Exit code 0 once the server took every part, whatever the outcomes.",
    )
    feedback.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    feedback.add_argument("labels", type=Path, help="CSV with a header naming id and label")
    feedback.add_argument(
        "--api-key",
        default=os.environ.get("MODELSHIP_API_KEY"),
        help="the server's API key (default: MODELSHIP_API_KEY)",
    )
    quality = commands.add_parser(
        "quality",
        help="model quality from captured rows joined with labels, per version and per day",
        description="Join the rows the servers captured (captures/<version>/<day>/ under their "
        "MODELSHIP_CAPTURE_URI) with a labels CSV (id,label) or every CSV under a store prefix, "
        "and print the model's metrics per version and per day of prediction. For labels that "
        "arrive after the servers' feedback window.",
    )
    quality.add_argument(
        "captures", help="the capture store: s3://BUCKET[/PATH], gs://…, file:///DIR"
    )
    quality.add_argument(
        "--labels",
        required=True,
        help="labels CSV (id,label): a path, or an s3:// gs:// file:/// prefix of them",
    )
    quality.add_argument("--json", action="store_true", help="the whole report as JSON")


def run_feedback(args: argparse.Namespace) -> int:
    # Here, not at the top: importing the serving side loads prometheus_client, which must not
    # happen in the `modelship` process before `serve` has set PROMETHEUS_MULTIPROC_DIR.
    from modelship.quality import send_labels
    from modelship.serving.feedback import OUTCOMES

    report = send_labels(args.url, args.labels, args.api_key)
    counts = ", ".join(f"{report[o]} {o}" for o in OUTCOMES)
    print(f"{report['received']} labels sent: {counts}")
    for problem in report["problems"][:20]:
        print(
            f"  row {problem['index'] + 1}: {problem['id']!r} {problem['outcome']}: "
            f"{problem['message']}"
        )
    return 0


def run_quality(args: argparse.Namespace) -> int:
    from modelship.quality import format_report, offline_quality

    report = offline_quality(args.captures, args.labels).report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
