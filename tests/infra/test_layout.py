"""The layout holds: one repository root, one reader of the stack files, no test double in the
program, and the program importable as the package Pulumi runs."""

from __future__ import annotations

import re

from infra.stack_file import PROGRAM_DIR, REPO_ROOT

# Everything that is code of the project's deploy side.
CODE = sorted(
    path
    for folder in ("infra", "policy", "tests", "scripts")
    for path in (REPO_ROOT / folder).rglob("*.py")
)
# The policy pack's entry point runs in its own environment (policy/venv) and must find its root.
OWN_ROOT = {REPO_ROOT / "infra" / "stack_file.py", REPO_ROOT / "policy" / "__main__.py"}


def test_the_repository_root_is_defined_once() -> None:
    defining = {
        path
        for path in CODE
        if re.search(r"^\w*ROOT\w* = .*parent\.parent", path.read_text(), re.MULTILINE)
    }
    assert defining <= OWN_ROOT | {REPO_ROOT / "tests" / "conftest.py"}, defining - OWN_ROOT


def test_only_stack_file_names_the_stack_file_path() -> None:
    """The path of `Pulumi.<stack>.yaml` is built (and the file parsed) in stack_file.py only."""
    builders = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in CODE
        if re.search(r"/ f\"Pulumi\.\{", path.read_text())
    }
    assert builders == {"infra/stack_file.py"}


def test_no_test_double_ships_in_the_program() -> None:
    doubles = re.compile(r"MOCK_|mock-|123456789012|ModelshipMocks|fake_digest")
    found = {
        path.relative_to(PROGRAM_DIR).as_posix()
        for path in PROGRAM_DIR.rglob("*.py")
        if doubles.search(path.read_text())
    }
    assert not found


def test_every_layer_folder_is_a_package() -> None:
    folders = [p for p in PROGRAM_DIR.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    assert folders
    assert all((folder / "__init__.py").exists() for folder in folders), folders


def test_program_directory_names_cannot_shadow_installed_packages() -> None:
    """Pulumi puts infra/ first on sys.path; `__main__.py` takes it off before importing."""
    text = (PROGRAM_DIR / "__main__.py").read_text()
    assert text.index("sys.path[:]") < text.index("import pulumi")
