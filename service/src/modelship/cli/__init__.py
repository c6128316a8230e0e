"""The `modelship` command: train, import, predict, info, report, serve, capacity, models,
feedback, quality, rollout.

One module per command, each an `add_parser` and a `run` that delegates to the layer doing the
work (build, the batch transform, the model store, the server)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from modelship import __version__
from modelship.cli import (
    capacity,
    import_model,
    info,
    labels,
    models,
    predict,
    report,
    rollout,
    serve,
    train,
)
from modelship.errors import ModelshipError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelship",
        description="Train a scikit-learn model from any CSV, export it to ONNX, and serve it.",
    )
    parser.add_argument("--version", action="version", version=f"modelship {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (
        train,
        import_model,
        predict,
        models,
        info,
        report,
        serve,
        capacity,
        labels,
        rollout,
    ):
        command.add_parser(commands)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": train.run,
    "import": import_model.run,
    "predict": predict.run,
    "info": info.run,
    "serve": serve.run,
    "capacity": capacity.run,
    "models": models.run,
    "report": report.run,
    "feedback": labels.run_feedback,
    "quality": labels.run_quality,
    "rollout": rollout.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ModelshipError as exc:
        print(f"modelship: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"modelship: error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
