"""The Dockerfile as text: a real linter and the stages' contract. The images built from it are
tested in tests/image/ (built with buildah, run as each stack runs them)."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO

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
