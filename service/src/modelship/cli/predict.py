"""`modelship predict`: the batch transform (one CSV offline, or a file of any size in shards)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from modelship.contracts.settings import load_settings
from modelship.errors import ModelshipError

if TYPE_CHECKING:
    from modelship.model.predictor import Predictor
    from modelship.transform import Input


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    predict = commands.add_parser(
        "predict",
        help="predict a CSV offline, or a file of any size in shards (batch transform)",
        description="Append the prediction column(s) to every row of a CSV, offline, in chunks "
        "(bounded memory). INPUT is a CSV file (.csv or .csv.gz), a directory or a prefix of "
        "them, as a path or an s3:// gs:// file:// URI. With -o FILE.csv (or no -o: standard "
        "output) the result is one CSV; with -o PREFIX (a directory or s3://BUCKET/outputs/RUN/) "
        "it is part files plus a manifest written last (_manifest.json), and --shard I/N scores "
        "only the I-th of N byte ranges of the input, so N workers cover it exactly once.",
    )
    predict.add_argument(
        "model", help="artifact directory, or a model version URI (s3://…/models/NAME/SHA256/)"
    )
    predict.add_argument("input", help="input CSV file, directory or prefix (path or URI)")
    predict.add_argument(
        "--output",
        "-o",
        help="output: FILE.csv for one CSV (default: standard output), else a prefix for parts "
        "and manifests",
    )
    predict.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="score only shard I (from 0) of N; needs -o PREFIX; re-running a shard replaces "
        "its part",
    )
    predict.add_argument(
        "--merge",
        action="store_true",
        help="score nothing: check that every shard under -o PREFIX finished and that their "
        "manifests agree (model, input, options), then write PREFIX/_manifest.json (the last "
        "shard to finish also does this); MODEL and INPUT are not read",
    )
    predict.add_argument(
        "--on-error",
        choices=["fail", "skip"],
        default="fail",
        help="an invalid row fails the run, naming its line and column (fail, the default), or "
        "is written with the reason to a rejects file and counted (skip)",
    )
    predict.add_argument(
        "--rejects",
        help="with --on-error skip and one output CSV: where rejected rows go "
        "(default: OUTPUT with .rejects.csv)",
    )
    predict.add_argument(
        "--chunk-rows", type=int, default=5_000, help="rows predicted at a time (5000)"
    )


def _shard(text: str) -> object:
    from modelship.transform import TransformError, parse_shard

    try:
        return parse_shard(text)
    except TransformError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def run(args: argparse.Namespace) -> int:
    from modelship import transform

    single = args.output in (None, "-") or args.output.endswith(".csv")
    if single and (args.shard is not None or args.merge):
        raise ModelshipError(
            f"--{'shard' if args.shard is not None else 'merge'} writes part files and manifests "
            "under a prefix: give -o a directory or a prefix such as s3://BUCKET/outputs/RUN/"
        )
    if args.chunk_rows < 1:
        raise ModelshipError(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    if args.merge:
        output = transform.open_output(args.output)
        _report_manifest(transform.merge(output), output.uri_of(transform.MANIFEST))
        return 0
    from modelship.model.predictor import Predictor

    loaded = transform.load_model(args.model, load_settings().model_cache)
    predictor = Predictor(loaded)
    source = transform.open_input(args.input)
    if single:
        return _predict_one_csv(args, predictor, source)
    output = transform.open_output(args.output)
    shard = args.shard or transform.WHOLE
    manifest = transform.run_shard(
        transform.ShardRun(
            predictor=predictor,
            model=transform.model_record(loaded, args.model),
            source=source,
            output=output,
            shard=shard,
            chunk_rows=args.chunk_rows,
            on_error=args.on_error,
        )
    )
    print(
        f"shard {shard.index}/{shard.count}: predicted {manifest['rows_out']} rows"
        + (f", rejected {manifest['rejected']}" if manifest["rejected"] else "")
        + f" into {output.uri}",
        file=sys.stderr,
    )
    if manifest["warnings"]:
        print(f"warnings: {transform.warnings_summary(manifest['warnings'])}", file=sys.stderr)
    merged = transform.try_merge(output, shard.count)
    if merged is not None:
        _report_manifest(merged, output.uri_of(transform.MANIFEST))
    return 0


def _report_manifest(manifest: dict[str, object], uri: str) -> None:
    print(
        f"complete: {manifest['rows_out']} rows in {len(manifest['parts'])} parts "  # type: ignore[arg-type]
        f"(rejected {manifest['rejected']}), manifest {uri}",
        file=sys.stderr,
    )


def _predict_one_csv(args: argparse.Namespace, predictor: Predictor, source: Input) -> int:
    from modelship import transform

    if len(source.files) > 1:
        raise ModelshipError(
            f"{args.input} holds {len(source.files)} CSV files: give -o a prefix (a directory "
            "or s3://BUCKET/outputs/RUN/) to score them into parts"
        )
    to_stdout = args.output in (None, "-")
    rejects_uri = args.rejects
    if args.on_error == "skip" and rejects_uri is None:
        if to_stdout:
            raise ModelshipError("--on-error skip with standard output needs --rejects FILE")
        rejects_uri = args.output.removesuffix(".csv") + ".rejects.csv"
    with contextlib.ExitStack() as stack:
        rejects = transform.RejectsWriter(
            lambda: stack.enter_context(transform.file_writer(rejects_uri))
        )
        sink = sys.stdout if to_stdout else stack.enter_context(transform.file_writer(args.output))
        summary = transform.predict_whole_file(
            predictor, source, sink, args.chunk_rows, rejects if args.on_error == "skip" else None
        )
    print(f"predicted {summary.rows} rows", file=sys.stderr)
    if summary.rejected:
        print(f"rejected {summary.rejected} rows: {rejects_uri}", file=sys.stderr)
    if summary.warnings:
        print(f"warnings: {summary.warnings.summary()}", file=sys.stderr)
    return 0
