"""`modelship import`: a model trained elsewhere, as the artifact `train` writes."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from modelship.contracts.settings import DEFAULT_ARTIFACT

if TYPE_CHECKING:
    from modelship.contracts.card import ModelCard
from modelship.cli import common


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from modelship.build.importing.sources import EXTENSIONS, FORMAT_CHOICES

    command = commands.add_parser(
        "import",
        help="import a model trained elsewhere (skops, joblib, XGBoost, LightGBM, ONNX)",
        description="Turn a model trained elsewhere into the artifact `train` writes (model.onnx "
        "+ model-card.json), checking that the ONNX export gives the original model's "
        "predictions on a sample of data. Formats by extension: "
        + ", ".join(f"{ext} ({fmt})" for ext, fmt in EXTENSIONS.items())
        + ". The server only ever loads the ONNX file.",
    )
    command.add_argument("model", help="the model file: a path, s3:// or gs://")
    command.add_argument(
        "--sample",
        required=True,
        help="CSV of training-like rows with the feature columns (and optionally the target): "
        "schema, ranges, categories, example rows, parity and (with the target) metrics come "
        "from it; a path, s3:// or gs://",
    )
    command.add_argument(
        "--target",
        help="the target column in the sample, if it has one (metrics are measured on it); it "
        "also names the prediction column (default: target)",
    )
    command.add_argument(
        "--task",
        choices=["auto", "regression", "classification"],
        default="auto",
        help="what the model predicts, when the file does not say (only ONNX files may not)",
    )
    command.add_argument(
        "--format", choices=list(FORMAT_CHOICES), help="the file's format, if not its extension's"
    )
    command.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a joblib/pickle file: loading a pickle RUNS CODE from the file with your "
        "permissions, so pass this only for files you trust; it is unpickled only in this "
        "import process, never by the server (prefer skops files)",
    )
    command.add_argument(
        "--trust",
        type=common.names,
        default=[],
        metavar="TYPES",
        help="skops: also load these types the file contains (comma-separated, as the error "
        "about untrusted types lists them)",
    )
    command.add_argument(
        "--input-map",
        type=common.mapping,
        default={},
        metavar="COLUMN=INPUT,...",
        help="ONNX: which graph input takes which sample column, where the names differ",
    )
    command.add_argument("--numeric", type=common.names, default=[], help="treat these as numeric")
    command.add_argument(
        "--categorical", type=common.names, default=[], help="treat these as categories"
    )
    command.add_argument(
        "--parity-tolerance",
        type=float,
        default=1e-4,
        help="largest ONNX vs original difference accepted (x target std for regression, "
        "absolute on probabilities for classification)",
    )
    command.add_argument("--name", help="model name (default: the model file's name)")
    command.add_argument("--output", "-o", default=str(DEFAULT_ARTIFACT), help=common.OUTPUT_HELP)
    common.add_capacity_flag(command)
    command.add_argument("--quiet", "-q", action="store_true", help="print only the result")


def run(args: argparse.Namespace) -> int:
    from modelship.build.importing.importer import ImportOptions, import_model

    with tempfile.TemporaryDirectory(prefix="modelship-") as scratch:
        model = common.local_data(args.model, Path(scratch))
        sample = common.local_data(args.sample, Path(scratch))

        def make(output: Path) -> ModelCard:
            options = ImportOptions(
                model=model,
                sample=sample,
                output=output,
                target=args.target,
                task=args.task,
                format=args.format,
                trust_pickle=args.trust_pickle,
                trust=args.trust,
                input_map=args.input_map,
                numeric=args.numeric,
                categorical=args.categorical,
                parity_tolerance=args.parity_tolerance,
                name=args.name,
            )
            return import_model(options, common.say(args.quiet))  # type: ignore[arg-type]

        common.write_artifact(args.output, Path(scratch), make, args.capacity, args.quiet)
    return 0
