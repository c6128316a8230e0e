"""The content tag: which files the build context holds (Docker's .dockerignore rules) and when
the tag changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.core.build_context import content_tag, context_files
from infra.core.image import DOCKERFILE
from infra.stack_file import REPO_ROOT

IGNORE = "# comment\n*\n!pyproject.toml\n!service/src/\n**/__pycache__\n**/*.pyc\nmodel-store\n"
PATHS = {
    "pyproject.toml": False,
    "README.md": True,
    "Dockerfile": True,
    "service/src/modelship/app.py": False,
    "service/src/modelship/__pycache__/app.cpython-311.pyc": True,
    "service/src/x.pyc": True,
    "service/tests/test_x.py": True,
    ".venv/lib/site.py": True,
}


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    root = tmp_path_factory.mktemp("context")
    (root / ".dockerignore").write_text(IGNORE)
    for path in PATHS:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    return {p.relative_to(root).as_posix() for p in context_files(root)}


@pytest.mark.parametrize(("path", "excluded"), sorted(PATHS.items()))
def test_dockerignore_semantics(sent: set[str], path: str, excluded: bool) -> None:
    assert (path not in sent) is excluded


def test_neither_the_dockerfile_nor_the_ignore_file_is_a_context_file(sent: set[str]) -> None:
    assert not {"Dockerfile", ".dockerignore"} & sent


def test_the_repository_context_is_what_the_dockerfile_copies() -> None:
    files = {p.relative_to(REPO_ROOT).as_posix() for p in context_files(REPO_ROOT)}
    assert {"pyproject.toml", "uv.lock", "service/pyproject.toml", "service/README.md"} <= files
    assert any(f.startswith("service/src/modelship/") for f in files)
    assert not any(f.startswith(("infra/", "tests/", ".git/", ".venv/", "docs/")) for f in files)
    assert not any("__pycache__" in f for f in files)


def _context(root: Path) -> Path:
    (root / "service" / "src").mkdir(parents=True)
    (root / ".dockerignore").write_text("*\n!service/src/\n")
    (root / "service" / "src" / "app.py").write_text("print('v1')\n")
    (root / "notes.txt").write_text("not in the image\n")
    dockerfile = root / "Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    return dockerfile


def test_tag_changes_with_the_context_only(tmp_path: Path) -> None:
    dockerfile = _context(tmp_path)
    settings = {"platform": "linux/amd64"}
    first = content_tag(tmp_path, dockerfile, settings)
    assert first.startswith("src-") and len(first) == 20
    assert content_tag(tmp_path, dockerfile, settings) == first
    (tmp_path / "notes.txt").write_text("edited, but ignored\n")
    assert content_tag(tmp_path, dockerfile, settings) == first
    (tmp_path / "service" / "src" / "app.py").write_text("print('v2')\n")
    second = content_tag(tmp_path, dockerfile, settings)
    assert second != first
    dockerfile.write_text("FROM scratch\nLABEL x=y\n")
    assert content_tag(tmp_path, dockerfile, settings) != second
    assert content_tag(tmp_path, dockerfile, {"platform": "linux/arm64"}) != second


def test_repository_tag_is_stable() -> None:
    settings = {"platform": "linux/amd64"}
    tag = content_tag(REPO_ROOT, REPO_ROOT / DOCKERFILE, settings)
    assert tag == content_tag(REPO_ROOT, REPO_ROOT / DOCKERFILE, settings)
