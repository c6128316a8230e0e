"""`modelship train`: train a model from a CSV and write (or publish) its artifact."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelship.contracts.settings import DEFAULT_ARTIFACT
from modelship.errors import ModelshipError

if TYPE_CHECKING:
    pass
from modelship.cli import common


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship train`."""
    train = commands.add_parser(
        "train",
        help="train a model from a CSV and write an artifact directory",
        description="Train a model from a CSV and write an artifact directory (model.onnx + "
        "model-card.json). With no --data, trains on the bundled insurance data set.",
    )
    train.add_argument(
        "--data", help="training CSV: a path, s3:// or gs:// (default: bundled insurance.csv)"
    )
    train.add_argument("--target", help="column to predict (default for bundled data: charges)")
    train.add_argument("--output", "-o", default=str(DEFAULT_ARTIFACT), help=common.OUTPUT_HELP)
    _train_flags(train)
    common.add_capacity_flag(train)
    train.add_argument("--quiet", "-q", action="store_true", help="print only the result")


def _train_flags(train: argparse.ArgumentParser) -> None:
    """The flags of TrainOptions' fields, with its help and defaults; it checks the values."""
    from modelship.build.training.options import CLI_FIELDS, TrainOptions, flag_of

    for field in CLI_FIELDS:
        flag = flag_of(field)
        default = TrainOptions.model_fields[field].default
        shown = f" ({default:g}{flag.unit})" if isinstance(default, float) else ""
        if isinstance(default, str | int) and not isinstance(default, bool):
            shown = f" ({default})"
        train.add_argument(flag.name, dest=field, metavar=flag.metavar, help=flag.help + shown)


def run(args: argparse.Namespace) -> int:
    from modelship.build.training.options import CLI_FIELDS

    given = {
        field: getattr(args, field) for field in CLI_FIELDS if getattr(args, field) is not None
    }
    train_to(args.output, args.data, args.target, given, args.quiet, capacity=args.capacity)
    return 0


def train_to(
    output: str,
    data: str | None,
    target: str | None,
    given: dict[str, Any],
    quiet: bool,
    *,
    capacity: bool = False,
) -> None:
    """Train on `data` (default: the bundled data set) with the options `given` (the rest take
    TrainOptions' defaults) and write or publish the artifact at `output`; with `capacity`,
    measure what one replica serves as the last step."""
    from modelship.build.training.data import BUNDLED_DATA, BUNDLED_TARGET
    from modelship.build.training.options import TrainOptions
    from modelship.build.training.train import train

    target = target or (BUNDLED_TARGET if data is None else None)
    if target is None:
        raise ModelshipError("--target is required with --data (the column to predict)")
    # Checked before any download: the data and output paths are filled in below.
    options = TrainOptions(
        data=Path(data or BUNDLED_DATA), target=target, output=Path(output), **given
    )
    with tempfile.TemporaryDirectory(prefix="modelship-") as scratch:
        local = common.local_data(data, Path(scratch)) if data else BUNDLED_DATA
        common.write_artifact(
            output,
            Path(scratch),
            lambda artifact_dir: train(
                options.model_copy(update={"data": local, "output": artifact_dir}),
                common.say(quiet),  # type: ignore[arg-type]
            ),
            capacity,
            quiet,
        )
