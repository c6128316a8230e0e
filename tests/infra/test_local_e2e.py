"""The local retrain → deploy → roll back workflow of docs/local.md, end to end without Docker.

The training arguments are taken from the stack's own `train_command` output (everything after
the image name is what the image's `modelship` entrypoint receives) and run with this machine's
`modelship`; the version it prints is served over HTTP on 127.0.0.1 and is what the stack
accepts as `modelship:modelUri`. Only `docker run` itself is not exercised (no engine here).
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import httpx
import pytest

from infra.settings import KEY_MODEL_URI
from infra.targets.local.config import KEY_MODEL_STORE_DIR
from modelship.build.training.data import BUNDLED_DATA
from tests.infra.harness import StackRun, run_stack
from tests.service.cli.test_cli import assert_one_line_error, modelship
from tests.service.server import running_server

from .test_local import container, env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def entrypoint_args(run: StackRun) -> list[str]:
    """What `train_command` passes to the training image's entrypoint."""
    tokens = shlex.split(run.outputs["train_command"])
    return tokens[tokens.index(run.outputs["training_image_tag"]) + 1 :]


def train(args: list[str], *more: str) -> str:
    result = modelship(*args, *more, "--quiet")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("published: ")
    return last.removeprefix("published: ")


def test_retrain_deploy_and_roll_back(tmp_path: Path) -> None:
    root = (tmp_path / "model-store").resolve()
    (root / "models").mkdir(parents=True)  # docs/local.md: mkdir -p model-store/{data,models}
    (root / "data").mkdir()
    shutil.copy(BUNDLED_DATA, root / "data" / "insurance.csv")
    stack = run_stack("local", {KEY_MODEL_STORE_DIR: str(root)})
    args = entrypoint_args(stack)

    # Retrain twice (one model family each, to keep the test short): two immutable versions.
    first = train(args, "--model", "gradient_boosting")
    second = train(args, "--model", "ridge")
    assert first != second
    for version in (first, second):
        assert version.startswith(f"{root}/models/insurance-charges/")
    listing = modelship("models", "list", str(root))
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.index(second) < listing.stdout.index(first)  # newest first

    # The printed path is served as is (what the container does with its mounted copy).
    with running_server("--model-uri", second, cwd=tmp_path) as server:
        card = httpx.get(f"{server.url}/model").json()
        assert second.rstrip("/").endswith(card["artifact"]["onnx_sha256"])
        assert card["model"]["kind"] == "ridge"
        example = httpx.get(f"{server.url}/model/examples/0").json()
        response = httpx.post(f"{server.url}/predict", json=example)
        assert response.status_code == 200, response.text

    # Deploy: the printed path is the config value; roll back: the previous one.
    deployed = run_stack("local", {KEY_MODEL_STORE_DIR: str(root), KEY_MODEL_URI: second})
    rolled_back = run_stack("local", {KEY_MODEL_STORE_DIR: str(root), KEY_MODEL_URI: first})
    for run, version in ((deployed, second), (rolled_back, first)):
        relative = version.removeprefix(f"{root}/")
        assert env(run)["MODELSHIP_MODEL_URI"] == f"/store/{relative}"
        assert container(run)["mounts"][0]["source"] == version.rstrip("/")
    assert deployed.outputs["image"] == rolled_back.outputs["image"]

    # A broken version never starts: exit 2, one line naming the URI (the container would
    # restart and never turn healthy); the stack refuses it before touching the container.
    broken = Path(second).parent / ("0" * 64)
    shutil.copytree(second, broken)
    assert_one_line_error(
        modelship("serve", "--model-uri", f"{broken}/", cwd=tmp_path),
        2,
        f"model {broken}/: checksum mismatch",
    )
