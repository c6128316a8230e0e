"""`modelship models list`: the model versions in a store."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from modelship.model import store

if TYPE_CHECKING:
    pass


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship models list`."""
    models = commands.add_parser(
        "models", help="model versions in a store", description="Model versions in a store."
    )
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = models_commands.add_parser(
        "list",
        help="list versions with their metrics and creation time",
        description="List the versions under a store root (s3://BUCKET[/PATH], gs://…, or a "
        "directory), newest first.",
    )
    listing.add_argument("uri", help="store root, or one model's prefix (…/models/NAME)")


def run(args: argparse.Namespace) -> int:
    found = store.versions(args.uri)
    if not found:
        print(f"no model versions under {args.uri}", file=sys.stderr)
        return 0
    for uri, card in found:
        test = card.metrics.get("test", {})
        shown = ", ".join(
            f"{k} {v:.4g}" for k, v in test.items() if isinstance(v, float) and k != "per_class"
        )
        print(f"{card.created_at}  {card.name:<24} {card.model.kind:<22} {shown}")
        print(f"    {uri}")
    return 0
