"""Two real images, one model-store round trip per stack.

The training image runs the training command the stack declares, read from the stack's own
resources and outputs (the gke CronJob's container, the fargate training task with its `timeout`
deadline wrapper, the local `docker run` line), against that stack's model store on 127.0.0.1
(S3 from moto, GCS from the emulator, a directory) and publishes a version. The service image,
run as the same stack declares it with `modelship:modelUri` set to that version, fetches it,
verifies it and serves it; a tampered copy of the version is refused.

The servers stand in for the cloud's storage; what the platform's identity supplies (the ECS task
role's credentials, GKE Workload Identity) is stood in for by the servers' endpoint and test
credentials, added to the environment the stack declares, and nothing else.

The training run is the stack's command unchanged, with the stack configured for a short search
(`modelship:trainingTimeBudgetSeconds`, as a user would set it), so each round trip takes well
under a minute and CI runs all three; `MODELSHIP_IMAGE_TRAINING_STACKS` picks fewer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from infra.config import ConfigError
from modelship.model import store
from tests.image.runtime import RunningContainer, run_container
from tests.image.stacks import (
    Deployed,
    cronjob,
    deployment,
    docker_container,
    docker_run,
    task_container,
)
from tests.infra.conftest import GKE_PROJECT
from tests.infra.harness import StackRun, run_stack
from tests.service.object_stores import gcs_server, s3_client, s3_server

STACKS = ("fargate", "gke", "local")
CI_STACKS = ",".join(STACKS)
# The shortest search the stacks accept: it still fits and exports a model (the default is 60 s).
SEARCH_SECONDS = 5
TRAIN_WITHIN = 900
"""Seconds; the stacks' own deadline is an hour (`modelship:trainingTimeoutMinutes`)."""
READY_WITHIN = 120
# What `$(id -u):$(id -g)` of the local line expands to: an ordinary user of the machine.
CALLER = (1000, 1000)


@dataclass(frozen=True)
class ModelStore:
    """A stack's model store on 127.0.0.1, as the stack's containers reach it."""

    root: str
    """The stack's `model_store` output: `s3://BUCKET`, `gs://BUCKET` or a directory."""
    identity: dict[str, str]
    """What the platform's identity adds to a container's environment (endpoint, keys)."""
    ports: tuple[int, ...]
    """Host ports the containers reach (relayed into their network namespaces)."""
    config: dict[str, Any]
    """Stack config that points the stack at this store."""

    def put(self, key: str, data: bytes) -> None:
        store.backend(store.parse(self.root)).write_once(key, data)

    def get(self, key: str) -> bytes:
        return store.backend(store.parse(self.root)).read(key)


def stack_run(stack: str, config: dict[str, Any]) -> StackRun:
    budget = {"modelship:trainingTimeBudgetSeconds": SEARCH_SECONDS}
    return run_stack(stack, {**(GKE_PROJECT if stack == "gke" else {}), **budget, **config})


def _port(url: str) -> int:
    port = urlparse(url).port
    assert port is not None, url
    return port


@contextlib.contextmanager
def model_store(
    stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModelStore]:
    """The stack's bucket, named as the stack names it, on a server; or the local directory."""
    if stack == "local":
        directory = tmp_path / "model-store"
        (directory / "models").mkdir(parents=True)
        shutil.chown(directory / "models", *CALLER)  # the caller's own store
        yield ModelStore(str(directory), {}, (), {"modelship:modelStoreDir": str(directory)})
        return
    root = str(stack_run(stack, {}).outputs["model_store"])
    bucket = urlparse(root).netloc
    server = s3_server() if stack == "fargate" else gcs_server()
    with server as env:
        for key, value in env.items():  # for this process's clients (`ModelStore.put`)
            monkeypatch.setenv(key, value)
        if stack == "fargate":
            s3_client(env).create_bucket(Bucket=bucket)
            identity = {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
            identity["AWS_SECRET_ACCESS_KEY"] = env["AWS_SECRET_ACCESS_KEY"]
            endpoint = env["AWS_ENDPOINT_URL"]
        else:
            from google.cloud import storage as gcs

            gcs.Client(project=env["GOOGLE_CLOUD_PROJECT"]).create_bucket(bucket)
            identity, endpoint = dict(env), env["STORAGE_EMULATOR_HOST"]
        yield ModelStore(root, identity, (_port(endpoint),), {})


def training_container(stack: str, model_store: ModelStore) -> Deployed:
    """The training container exactly as the stack declares it."""
    run = stack_run(stack, model_store.config)
    if stack == "gke":
        return cronjob(run)  # `train_command` starts a Job from this template
    if stack == "fargate":
        deployed = task_container(run, "train")
        # `train_command` (what a user runs) overrides the container's command with the same.
        words = shlex.split(str(run.outputs["train_command"]))
        overrides = json.loads(words[words.index("--overrides") + 1])
        assert overrides["containerOverrides"] == [
            {"name": "train", "command": list(deployed.spec.command or ())}
        ]
        return deployed
    return docker_run(str(run.outputs["train_command"]), "{}:{}".format(*CALLER))


def service_container(stack: str, model_store: ModelStore, version: str) -> Deployed:
    """The service container as the stack declares it with `modelship:modelUri` = version."""
    run = stack_run(stack, {**model_store.config, "modelship:modelUri": version})
    if stack == "gke":
        return deployment(run)
    if stack == "fargate":
        return task_container(run, "api")
    return docker_container(run)


def with_identity(deployed: Deployed, model_store: ModelStore) -> Deployed:
    clash = set(deployed.spec.env) & set(model_store.identity)
    assert not clash, f"{deployed.where} sets {clash} itself"
    spec = dataclasses.replace(deployed.spec, env={**deployed.spec.env, **model_store.identity})
    return dataclasses.replace(deployed, spec=spec)


def train(image: str, deployed: Deployed, model_store: ModelStore) -> str:
    """Run the training container to its end; the version URI it published."""
    with run_container(image, deployed.spec, reach=model_store.ports) as container:
        code, peak = _wait_watching_memory(container)
        logs = container.logs()
    assert code == 0, f"{deployed.where} exited {code}:\n{logs}"
    if deployed.memory_limit_bytes is not None:
        assert peak < deployed.memory_limit_bytes, (peak, deployed.memory_limit_bytes, logs)
    published = [line for line in logs.splitlines() if line.startswith("published: ")]
    assert published, f"{deployed.where} published nothing:\n{logs}"
    return published[-1].removeprefix("published: ").strip()


def _wait_watching_memory(container: RunningContainer) -> tuple[int, int]:
    """(exit code, peak resident memory of the container's processes, sampled)."""
    deadline = time.monotonic() + TRAIN_WITHIN
    peak = 0
    while container.exited() is None and time.monotonic() < deadline:
        peak = max(peak, container.rss_bytes())
        time.sleep(0.5)
    return container.wait(timeout=max(deadline - time.monotonic(), 1)), peak


def tampered_copy(model_store: ModelStore, version: str) -> str:
    """The version's files under another name, one byte of model.onnx changed: its card and
    its URI still name the original hash, the bytes do not match it."""
    root = model_store.root.rstrip("/")
    prefix = version.removeprefix(root + "/").rstrip("/")
    sha = prefix.rsplit("/", 1)[-1]
    for name in ("model-card.json", "model.onnx"):
        data = model_store.get(f"{prefix}/{name}")
        if name == "model.onnx":
            data = data[:-1] + bytes([data[-1] ^ 1])
        model_store.put(f"models/tampered/{sha}/{name}", data)
    return f"{root}/models/tampered/{sha}/"


def _stacks_here() -> list[str]:
    return os.environ.get("MODELSHIP_IMAGE_TRAINING_STACKS", CI_STACKS).split(",")


@pytest.mark.parametrize("stack", STACKS)
def test_the_training_image_publishes_what_the_service_image_serves(
    training_image: str,
    service_image: str,
    insurance_csv: Path,
    stack: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if stack not in _stacks_here():
        pytest.skip(f"not in MODELSHIP_IMAGE_TRAINING_STACKS (all: {','.join(STACKS)})")
    with model_store(stack, tmp_path, monkeypatch) as model_store_:
        trainer = training_container(stack, model_store_)
        command = list(trainer.spec.command or ())
        data = command[command.index("--data") + 1]
        model_store_.put(data.removeprefix(model_store_.root + "/"), insurance_csv.read_bytes())
        version = train(training_image, with_identity(trainer, model_store_), model_store_)
        assert version.startswith(f"{model_store_.root}/models/insurance-charges/"), version

        server = with_identity(service_container(stack, model_store_, version), model_store_)
        assert server.spec.env["MODELSHIP_MODEL_URI"], server.where
        (port,) = server.spec.ports
        with run_container(service_image, server.spec, reach=model_store_.ports) as container:
            container.wait_until(port, "/readyz", READY_WITHIN)
            with container.client(port) as client:
                card = client.get("/model").json()
                example = client.get("/model/examples/0").json()
                answer = client.post("/predict", json=example)
            assert answer.status_code == 200, answer.text
            logs = container.logs()
        assert version.rstrip("/").rsplit("/", 1)[-1] == card["artifact"]["onnx_sha256"], logs

        tampered = tampered_copy(model_store_, version)
        if stack == "local":  # the local stack fetches and verifies at preview already
            with pytest.raises(ConfigError, match="does not match its model card"):
                service_container(stack, model_store_, tampered)
            return
        server = with_identity(service_container(stack, model_store_, tampered), model_store_)
        with run_container(service_image, server.spec, reach=model_store_.ports) as container:
            code = container.wait(timeout=READY_WITHIN)
            logs = container.logs()
        assert code != 0, logs
        assert "checksum mismatch" in logs, logs
