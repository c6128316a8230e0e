"""`modelship report`: write or open a model's training report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from modelship.contracts.settings import DEFAULT_ARTIFACT, load_settings
from modelship.errors import ModelshipError
from modelship.model import artifact, store

if TYPE_CHECKING:
    pass


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship report`."""
    report = commands.add_parser(
        "report",
        help="write or open a model's training report",
        description="The training report made with the model: a self-contained HTML page of "
        "plots (model comparison, quality on the held-out split, feature importance, training "
        "data, ONNX parity). Prints where it is, copies it with -o, opens it with --open.",
    )
    report.add_argument(
        "artifact",
        nargs="?",
        default=str(DEFAULT_ARTIFACT),
        help="artifact directory, or a model version URI (s3://…/models/NAME/SHA256/, gs://…) "
        f"(default: {DEFAULT_ARTIFACT})",
    )
    report.add_argument("--output", "-o", type=Path, help="write the page to this file")
    report.add_argument("--open", action="store_true", help="open the page in a web browser")


def run(args: argparse.Namespace) -> int:
    import shutil
    import webbrowser

    if store.is_remote(args.artifact) or store.is_store_uri(args.artifact):
        loaded = store.fetch(args.artifact, load_settings().model_cache)
    else:
        loaded = artifact.load(Path(args.artifact))
    files = loaded.card.report
    if files is None:
        raise ModelshipError(
            f"{args.artifact} has no training report: it was made before modelship wrote "
            "reports; train it again to get one"
        )
    page = loaded.path / files.page
    if not page.is_file():
        raise ModelshipError(f"{args.artifact} is incomplete: its report {files.page} is missing")
    if args.output is not None:
        shutil.copyfile(page, args.output)  # self-contained: the one file is the whole report
        page = args.output
    print(page)
    if args.open and not webbrowser.open(page.resolve().as_uri()):
        raise ModelshipError(f"no web browser to open {page} with: open the file yourself")
    return 0
