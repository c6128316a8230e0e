"""A directory as the model store (the local stack's), through the `modelship` command.

The happy path (train → list → serve over HTTP) runs in tests/infra/test_local_e2e.py from the
stack's own `train_command`; here: what a user sees when a directory version is wrong.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelship.model import artifact, store
from tests.service.cli.test_cli import assert_one_line_error, modelship


@pytest.fixture
def version(regression_artifact: Path, tmp_path: Path) -> Path:
    """A version published into a fresh directory store, as `train --output file://…` does."""
    return Path(store.publish(regression_artifact, f"file://{tmp_path / 'model-store'}"))


def test_models_list_shows_directory_versions_by_path(version: Path) -> None:
    root = version.parents[2]
    listing = modelship("models", "list", str(root))
    assert listing.returncode == 0, listing.stderr
    assert f"    {version}/" in listing.stdout.splitlines()
    empty = modelship("models", "list", str(root.parent / "nothing-here"))
    assert empty.returncode == 0
    assert "no model versions under" in empty.stderr


@pytest.mark.parametrize("damage", ["renamed", "tampered", "missing", "no-card"])
def test_serving_a_bad_directory_version_stops_start_up_naming_it(
    version: Path, tmp_path: Path, damage: str
) -> None:
    expected = {
        "renamed": "checksum mismatch",
        "tampered": "does not match its model card",
        "missing": "the directory does not exist",
        "no-card": "model-card.json is missing",
    }[damage]
    target = version
    if damage == "renamed":
        target = version.parent / ("0" * 64)
        version.rename(target)
    elif damage == "tampered":
        (version / artifact.ONNX_FILE).write_bytes(b"not the published model")
    elif damage == "missing":
        shutil.rmtree(version)
    else:
        (version / artifact.CARD_FILE).unlink()
    result = modelship("serve", "--model-uri", f"{target}/", cwd=tmp_path)
    # Exit 2 before any port is opened: the container restarts and never reports healthy.
    assert_one_line_error(result, 2, f"model {target}/: ")
    assert expected in result.stderr
