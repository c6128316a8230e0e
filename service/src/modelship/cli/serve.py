"""`modelship serve`: check or fetch (or first train) the model, then run the server."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from modelship.cli import train
from modelship.contracts.rollout import check_compatible
from modelship.contracts.settings import DEFAULT_ARTIFACT, Settings, load_settings
from modelship.errors import ModelshipError
from modelship.model import artifact, store

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
    "candidate",
    "candidate_traffic",
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`modelship serve`."""
    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP",
        description="Serve a model over HTTP. Options default to MODELSHIP_* environment "
        "variables (MODELSHIP_ARTIFACT, _HOST, _PORT, _WORKERS, _LOG_LEVEL, ...). If the default "
        "artifact does not exist yet, the default model is trained first. With --candidate, a "
        "second model version is served beside it and judged (GET /rollout, docs/rollout.md).",
    )
    for name in SERVE_FLAGS:
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, **_setting_flag(name))


def _check_candidate(settings: Settings, primary: artifact.Artifact) -> None:
    """The rollout's candidate fetched and verified (a store URI, like --model-uri) or loaded
    (a directory), and comparable with the primary, before any worker starts."""
    assert settings.candidate is not None
    if store.is_store_uri(settings.candidate):
        candidate = store.fetch(settings.candidate, settings.model_cache)
    else:
        path = Path(settings.candidate)
        if not artifact.exists(path):
            raise ModelshipError(f"--candidate {settings.candidate}: no model artifact there")
        candidate = artifact.load(path)
    check_compatible(primary.card, candidate.card)
    print(
        f"Rollout: candidate {settings.candidate} (version {candidate.card.version}, "
        f"{settings.candidate_traffic}) beside primary version {primary.card.version}",
        file=sys.stderr,
    )


def _setting_flag(name: str) -> dict[str, Any]:
    """An option of `serve` as its Settings field declares it: help text, default, choices."""
    field = Settings.model_fields[name]
    default = "none" if field.default is None else field.default
    options: dict[str, Any] = {
        # argparse %-formats help texts: a literal % is written %%.
        "help": f"{field.description} (MODELSHIP_{name.upper()}; default {default})".replace(
            "%", "%%"
        )
    }
    if get_origin(field.annotation) is Literal:
        options["choices"] = get_args(field.annotation)
        return options
    options["metavar"] = name.upper()
    if field.annotation in (int, float):
        options["type"] = field.annotation
    return options


def run(args: argparse.Namespace) -> int:
    # Through the environment: the workers uvicorn starts read their settings from it.
    for name in SERVE_FLAGS:
        value = getattr(args, name)
        if value is not None:
            os.environ[f"MODELSHIP_{name.upper()}"] = str(value)
    settings = load_settings()
    primary: artifact.Artifact | None = None
    if settings.model_uri:
        # Fetched and verified once here, so a bad URI stops start-up with a clear message
        # and the workers find the version in the cache.
        primary = store.fetch(settings.model_uri, settings.model_cache)
        print(f"Serving {settings.model_uri} (verified, cached at {primary.path})", file=sys.stderr)
    elif not artifact.exists(settings.artifact):
        if settings.artifact != DEFAULT_ARTIFACT:
            raise ModelshipError(f"no model artifact at {settings.artifact}")
        print(
            f"No model at {settings.artifact} yet: training the default model on the bundled "
            "insurance data first (about a minute).",
            file=sys.stderr,
            flush=True,
        )
        # without the capacity step: someone is waiting for the server
        train.train_to(str(settings.artifact), None, None, {}, quiet=False, capacity=False)
    else:
        # Fail here, with a clear message, not inside a worker.
        primary = artifact.load(settings.artifact)
    if settings.candidate:
        _check_candidate(settings, primary or artifact.load(settings.artifact))

    from modelship.serving.shared import STATE_DIR_ENV
    from modelship.transport.http.logging import log_config
    from modelship.transport.uvicorn import server

    os.environ["MODELSHIP_ARTIFACT"] = str(settings.artifact.resolve())
    # Every worker writes its Prometheus samples here; /metrics in any worker adds them up.
    # A fresh directory per start, so counters of an earlier run never leak in.
    # Likewise the state the workers share (the feedback join: modelship.serving.shared).
    with (
        tempfile.TemporaryDirectory(prefix="modelship-metrics-") as metrics_dir,
        tempfile.TemporaryDirectory(prefix="modelship-state-") as state_dir,
    ):
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # empty would mean the cwd
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        own_state = settings.state_dir is None
        if own_state:
            os.environ[STATE_DIR_ENV] = state_dir
        try:
            server.run(
                "modelship.transport.http.app:app_from_env",
                adapter=settings.uvicorn_adapter,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level=settings.log_level,
                log_config=log_config(settings.log_level),
                graceful_seconds=settings.shutdown_grace_seconds,
                keep_alive_seconds=settings.keep_alive_seconds,
            )
        finally:
            if own_state:  # the directory is gone now: nothing started later may name it
                os.environ.pop(STATE_DIR_ENV, None)
    return 0
