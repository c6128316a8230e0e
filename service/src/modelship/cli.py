"""The `modelship` command: train, import, predict, info, report, serve, models."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from modelship import __version__, artifact, store
from modelship.errors import ModelshipError
from modelship.settings import DEFAULT_ARTIFACT, Settings, load_settings

if TYPE_CHECKING:
    from modelship.card import ModelCard
    from modelship.predictor import Predictor
    from modelship.training.options import TrainOptions
    from modelship.transform import Input

# The options of `serve`: each is the Settings field of that name (help, default and choices
# from its declaration), set through its MODELSHIP_* variable.
SERVE_FLAGS = (
    "artifact",
    "model_uri",
    "host",
    "port",
    "workers",
    "log_level",
    "keep_alive_seconds",
)
OUTPUT_HELP = (
    "artifact directory to write, or a store root (s3://BUCKET[/PATH], gs://…, "
    "file:///DIR) to publish a new immutable version under models/<name>/<sha256>/"
)


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def _train_flags(train: argparse.ArgumentParser) -> None:
    """The flags of TrainOptions' fields, with its help and defaults; it checks the values."""
    from modelship.training.options import CLI_FIELDS, TrainOptions, flag_of

    for field in CLI_FIELDS:
        flag = flag_of(field)
        default = TrainOptions.model_fields[field].default
        shown = f" ({default:g}{flag.unit})" if isinstance(default, float) else ""
        if isinstance(default, str | int) and not isinstance(default, bool):
            shown = f" ({default})"
        train.add_argument(flag.name, dest=field, metavar=flag.metavar, help=flag.help + shown)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelship",
        description="Train a scikit-learn model from any CSV, export it to ONNX, and serve it.",
    )
    parser.add_argument("--version", action="version", version=f"modelship {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    train.add_argument("--output", "-o", default=str(DEFAULT_ARTIFACT), help=OUTPUT_HELP)
    _train_flags(train)
    train.add_argument("--quiet", "-q", action="store_true", help="print only the result")

    _import_parser(commands)

    _predict_parser(commands)

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

    info = commands.add_parser("info", help="print a model card", description="Print a model card.")
    info.add_argument("artifact", type=Path, nargs="?", default=DEFAULT_ARTIFACT)
    info.add_argument("--json", action="store_true", help="the whole card as JSON")

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

    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP",
        description="Serve a model over HTTP. Options default to MODELSHIP_* environment "
        "variables (MODELSHIP_ARTIFACT, _HOST, _PORT, _WORKERS, _LOG_LEVEL, ...). If the default "
        "artifact does not exist yet, the default model is trained first.",
    )
    for name in SERVE_FLAGS:
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, **_setting_flag(name))
    return parser


def _mapping(text: str) -> dict[str, str]:
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


def _import_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from modelship.importing.sources import EXTENSIONS, FORMAT_CHOICES

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
        type=_names,
        default=[],
        metavar="TYPES",
        help="skops: also load these types the file contains (comma-separated, as the error "
        "about untrusted types lists them)",
    )
    command.add_argument(
        "--input-map",
        type=_mapping,
        default={},
        metavar="COLUMN=INPUT,...",
        help="ONNX: which graph input takes which sample column, where the names differ",
    )
    command.add_argument("--numeric", type=_names, default=[], help="treat these as numeric")
    command.add_argument("--categorical", type=_names, default=[], help="treat these as categories")
    command.add_argument(
        "--parity-tolerance",
        type=float,
        default=1e-4,
        help="largest ONNX vs original difference accepted (x target std for regression, "
        "absolute on probabilities for classification)",
    )
    command.add_argument("--name", help="model name (default: the model file's name)")
    command.add_argument("--output", "-o", default=str(DEFAULT_ARTIFACT), help=OUTPUT_HELP)
    command.add_argument("--quiet", "-q", action="store_true", help="print only the result")


def _predict_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _say(quiet: bool) -> object:
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def _train(args: argparse.Namespace) -> int:
    from modelship.training.data import BUNDLED_DATA, BUNDLED_TARGET
    from modelship.training.train import train

    target = args.target or (BUNDLED_TARGET if args.data is None else None)
    if target is None:
        raise ModelshipError("--target is required with --data (the column to predict)")
    # Checked before any download: the data and output paths are filled in below.
    options = _train_options(args, Path(args.data or BUNDLED_DATA), target, Path(args.output))
    with tempfile.TemporaryDirectory(prefix="modelship-") as scratch:
        data = _local_data(args.data, Path(scratch)) if args.data else BUNDLED_DATA
        _write(
            args.output,
            Path(scratch),
            lambda output: train(
                options.model_copy(update={"data": data, "output": output}),
                _say(args.quiet),  # type: ignore[arg-type]
            ),
        )
    return 0


def _write(output_arg: str, scratch: Path, make: Callable[[Path], ModelCard]) -> None:
    """Write an artifact to a directory, or build it in `scratch` and publish it to a store."""
    publish_to = output_arg if store.is_store_uri(output_arg) else None
    if publish_to:
        store.parse(publish_to)  # a malformed store URI fails now, not after the work
    output = scratch / "artifact" if publish_to else Path(output_arg)
    card = make(output)
    print(_summary(card.model_dump(mode="json"), card.version))
    if publish_to:
        print(f"published: {store.publish(output, publish_to)}")
    else:
        print(f"artifact: {output}")


def _import(args: argparse.Namespace) -> int:
    from modelship.importing.importer import ImportOptions, import_model

    with tempfile.TemporaryDirectory(prefix="modelship-") as scratch:
        model = _local_data(args.model, Path(scratch))
        sample = _local_data(args.sample, Path(scratch))

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
            return import_model(options, _say(args.quiet))  # type: ignore[arg-type]

        _write(args.output, Path(scratch), make)
    return 0


def _local_data(data: str, scratch: Path) -> Path:
    """A remote file (training CSV, model, sample) is downloaded first; its name is kept for
    the model card."""
    if not store.is_remote(data):
        return Path(data)
    local = scratch / Path(store.parse(data).prefix).name
    local.write_bytes(store.read_object(data))
    return local


def _train_options(args: argparse.Namespace, data: Path, target: str, output: Path) -> TrainOptions:
    """The options as given: a flag left out takes TrainOptions' default."""
    from modelship.training.options import CLI_FIELDS, TrainOptions

    given = {
        field: getattr(args, field) for field in CLI_FIELDS if getattr(args, field) is not None
    }
    return TrainOptions(data=data, target=target, output=output, **given)


def _summary(card: dict[str, object], version: str) -> str:
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


def _predict(args: argparse.Namespace) -> int:
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
    from modelship.predictor import Predictor

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


def _info(args: argparse.Namespace) -> int:
    loaded = artifact.load(args.artifact)
    card = loaded.card
    if args.json:
        print(card.model_dump_json(indent=2))
        return 0
    print(_summary(card.model_dump(mode="json"), card.version))
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
    return 0


def _report(args: argparse.Namespace) -> int:
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


def _setting_flag(name: str) -> dict[str, Any]:
    """An option of `serve` as its Settings field declares it: help text, default, choices."""
    field = Settings.model_fields[name]
    default = "none" if field.default is None else field.default
    options: dict[str, Any] = {
        "help": f"{field.description} (MODELSHIP_{name.upper()}; default {default})"
    }
    if get_origin(field.annotation) is Literal:
        options["choices"] = get_args(field.annotation)
        return options
    options["metavar"] = name.upper()
    if field.annotation in (int, float):
        options["type"] = field.annotation
    return options


def _serve(args: argparse.Namespace) -> int:
    # Through the environment: the workers uvicorn starts read their settings from it.
    for name in SERVE_FLAGS:
        value = getattr(args, name)
        if value is not None:
            os.environ[f"MODELSHIP_{name.upper()}"] = str(value)
    settings = load_settings()
    if settings.model_uri:
        # Fetched and verified once here, so a bad URI stops start-up with a clear message
        # and the workers find the version in the cache.
        path = store.fetch(settings.model_uri, settings.model_cache).path
        print(f"Serving {settings.model_uri} (verified, cached at {path})", file=sys.stderr)
    elif not artifact.exists(settings.artifact):
        if settings.artifact != DEFAULT_ARTIFACT:
            raise ModelshipError(f"no model artifact at {settings.artifact}")
        print(
            f"No model at {settings.artifact} yet: training the default model on the bundled "
            "insurance data first (about a minute).",
            file=sys.stderr,
            flush=True,
        )
        _train(_parser().parse_args(["train", "--output", str(settings.artifact)]))
    else:
        artifact.load(settings.artifact)  # fail here, with a clear message, not inside a worker
    import tempfile

    import uvicorn

    from modelship.api.logging import log_config

    os.environ["MODELSHIP_ARTIFACT"] = str(settings.artifact.resolve())
    # Every worker writes its Prometheus samples here; /metrics in any worker adds them up.
    # A fresh directory per start, so counters of an earlier run never leak in.
    with tempfile.TemporaryDirectory(prefix="modelship-metrics-") as metrics_dir:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # empty would mean the cwd
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(
            "modelship.api.app:app_from_env",
            factory=True,
            # Admission at the connection: an overloaded worker refuses without an ASGI task.
            http="modelship.api.protocol:SheddingHttpProtocol",
            # uvloop, accepting connections in batches (libuv takes one per loop turn).
            loop="modelship.api.listener:new_event_loop",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            log_config=log_config(settings.log_level),
            access_log=False,  # modelship.access logs each request, with its id
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
            # uvicorn's protocols (stock and shedding alike) read it from this config.
            timeout_keep_alive=settings.keep_alive_seconds,
        )
    return 0


def _models(args: argparse.Namespace) -> int:
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


COMMANDS = {
    "train": _train,
    "import": _import,
    "predict": _predict,
    "info": _info,
    "serve": _serve,
    "models": _models,
    "report": _report,
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
