"""What the commands share: list options, progress lines, writing or publishing an artifact."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from modelship.model import store

if TYPE_CHECKING:
    from modelship.contracts.card import ModelCard


OUTPUT_HELP = (
    "artifact directory to write, or a store root (s3://BUCKET[/PATH], gs://…, "
    "file:///DIR) to publish a new immutable version under models/<name>/<sha256>/"
)


def names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def mapping(text: str) -> dict[str, str]:
    pairs = [part.strip() for part in text.split(",") if part.strip()]
    mapping = {}
    for pair in pairs:
        column, sep, name = pair.partition("=")
        if not sep or not column.strip() or not name.strip():
            raise argparse.ArgumentTypeError(f"expected COLUMN=INPUT pairs, got {pair!r}")
        mapping[column.strip()] = name.strip()
    if not mapping:
        raise argparse.ArgumentTypeError("expected COLUMN=INPUT pairs, comma-separated")
    return mapping


def say(quiet: bool) -> object:
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


CAPACITY_ENV = "MODELSHIP_CAPACITY"


def add_capacity_flag(parser: argparse.ArgumentParser) -> None:
    """`--no-capacity` of train and import: the capacity step is on unless skipped."""
    parser.add_argument(
        "--no-capacity",
        dest="capacity",
        action="store_false",
        default=os.environ.get(CAPACITY_ENV, "on") != "off",
        help="skip measuring what one replica serves (modelship capacity at 500m CPU, 512Mi, "
        f"p99 100 ms, about half a minute; needs root); also {CAPACITY_ENV}=off",
    )


def write_artifact(
    output_arg: str,
    scratch: Path,
    make: Callable[[Path], ModelCard],
    capacity: bool = False,
    quiet: bool = False,
) -> None:
    """Write an artifact to a directory, or build it in `scratch` and publish it to a store;
    with `capacity`, measure what one replica serves into its card first."""
    publish_to = output_arg if store.is_store_uri(output_arg) else None
    if publish_to:
        store.parse(publish_to)  # a malformed store URI fails now, not after the work
    output = scratch / "artifact" if publish_to else Path(output_arg)
    card = make(output)
    if capacity:
        from modelship.build.capacity.run import measure_step

        card = measure_step(output, say(quiet)) or card  # type: ignore[arg-type]
    print(summary(card.model_dump(mode="json"), card.version))
    if publish_to:
        print(f"published: {store.publish(output, publish_to)}")
    else:
        print(f"artifact: {output}")


def local_data(data: str, scratch: Path) -> Path:
    """A remote file (training CSV, model, sample) is downloaded first; its name is kept for
    the model card."""
    if not store.is_remote(data):
        return Path(data)
    local = scratch / Path(store.parse(data).prefix).name
    local.write_bytes(store.read_object(data))
    return local


def summary(card: dict[str, object], version: str) -> str:
    metrics = card["metrics"]
    assert isinstance(metrics, dict)
    test = {k: v for k, v in metrics.get("test", {}).items() if k != "per_class"}
    model = card["model"]
    assert isinstance(model, dict)
    shown = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in test.items()
    )
    measured = f"test {shown}" if test else "no metrics (the sample has no target)"
    return f"model {card['name']} ({model['kind']}, version {version}): {measured}"
