"""`modelship info`: print a model card."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from modelship.contracts.settings import DEFAULT_ARTIFACT
from modelship.model import artifact

if TYPE_CHECKING:
    pass
from modelship.cli import common


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship info`."""
    info = commands.add_parser("info", help="print a model card", description="Print a model card.")
    info.add_argument("artifact", type=Path, nargs="?", default=DEFAULT_ARTIFACT)
    info.add_argument("--json", action="store_true", help="the whole card as JSON")


def run(args: argparse.Namespace) -> int:
    loaded = artifact.load(args.artifact)
    card = loaded.card
    if args.json:
        print(card.model_dump_json(indent=2))
        return 0
    print(common.summary(card.model_dump(mode="json"), card.version))
    print(f"task: {card.task}, target: {card.target}, created {card.created_at}")
    for feature in card.features:
        if feature.numeric is not None:
            n = feature.numeric
            print(f"  {feature.name:<20} numeric      {n.min:g} .. {n.max:g} (median {n.median:g})")
        else:
            print(f"  {feature.name:<20} categorical  {', '.join(feature.categories or [])}")
    if card.classes:
        print(f"classes: {', '.join(card.classes)}")
    data = card.training_data
    print(f"trained on {data.source}: {data.rows} rows, sha256 {data.sha256[:16]}…")
    p = card.parity
    print(f"ONNX parity on {p.rows} test rows: max abs diff {p.max_abs_diff:.3g}")
    if card.capacity is None:
        print("capacity: not measured (modelship capacity measures it)")
    else:
        c = card.capacity
        print(f"capacity of one replica, measured {c.measured_at} on {c.cpu_model}:")
        for point in c.points:
            print(f"  {point.describe()}")
    return 0
