"""The Dockerfile, checked without a Docker engine: a real linter, and its stages replayed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from scripts.image_contents import TRAINING_EXTRAS, build_runtime_venv, build_venv
from tests.conftest import REPO
from tests.service.object_stores import BUCKET, s3_client, s3_server
from tests.service.server import running_server

DOCKERFILE = REPO / "service" / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        ["hadolint", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_stage_is_locked_down() -> None:
    text = DOCKERFILE.read_text()
    base = text[text.index("AS runtime-base\n") : text.index("AS training\n")]
    runtime = text[text.index("AS runtime\n") :]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    assert "FROM runtime-base AS runtime\n" in text
    assert "USER 10001:10001" in runtime
    assert "EXPOSE 8080" in runtime
    assert "HEALTHCHECK" in runtime
    assert "/healthz" in runtime
    assert "MODELSHIP_PORT=8080" in base
    assert "--frozen" in text
    assert "--extra train" not in text[text.index("AS runtime-deps") : text.index("AS train-deps")]
    # The last stage is what a plain `docker build` produces: it must be the service.
    assert re.findall(r"^FROM .* AS (\S+)$", text, re.M)[-1] == "runtime"


def test_training_stage_is_the_service_image_plus_training_libraries() -> None:
    """`--target training`: same base, user and entrypoint; the venv with train + cloud extras."""
    text = DOCKERFILE.read_text()
    training = text[text.index("AS training\n") : text.index("AS runtime\n")]
    assert "FROM runtime-base AS training\n" in text
    assert "COPY --from=train-deps" in training
    assert "USER 10001:10001" in training
    train_deps = text[text.index("AS train-deps") : text.index("AS trained")]
    assert "--extra train --extra cloud" in train_deps


@pytest.mark.slow
def test_runtime_dependencies_serve_without_training_libraries(tmp_path: Path) -> None:
    venv = build_runtime_venv(tmp_path)
    probe = (
        "import importlib.util as u, modelship.api.app;"
        "import boto3, google.cloud.storage;"
        "print([m for m in ('sklearn', 'pandas', 'skl2onnx', 'onnx') if u.find_spec(m)])"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert sys.version_info[:2] == (3, 11)


@pytest.mark.slow
def test_the_training_image_publishes_what_the_service_image_serves(
    tmp_path: Path, insurance_csv: Path
) -> None:
    """The cloud training flow with both images' environments replayed (no Docker here): the
    training stage's `modelship train` reads data from S3 and publishes a version, and the
    service stage, which has no training libraries, fetches, verifies and serves it."""
    training = build_venv(tmp_path / "training", TRAINING_EXTRAS)
    runtime = build_runtime_venv(tmp_path / "runtime")
    with s3_server() as env:
        s3_client(env).put_object(
            Bucket=BUCKET, Key="data/insurance.csv", Body=insurance_csv.read_bytes()
        )
        root = f"s3://{BUCKET}"
        # What the training job runs (infra.model_store.training_command), with a quick model.
        trained = subprocess.run(
            [str(training / "bin" / "modelship"), "train", "--data", f"{root}/data/insurance.csv",
             "--target", "charges", "--output", root, "--model", "ridge", "--quiet"],
            env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        uri = trained.stdout.strip().splitlines()[-1].removeprefix("published: ")
        assert uri.startswith(f"{root}/models/insurance-charges/")

        with running_server(
            "--model-uri", uri, cwd=tmp_path, env=env, python=str(runtime / "bin" / "python")
        ) as server:
            card = httpx.get(f"{server.url}/model").json()
            assert uri.rstrip("/").endswith(card["artifact"]["onnx_sha256"])
            example = httpx.get(f"{server.url}/model/examples/0").json()
            assert httpx.post(f"{server.url}/predict", json=example).status_code == 200
