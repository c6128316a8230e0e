"""The layout holds: one repository root, one reader of the stack files, no test double in the
program, and the program importable as the package Pulumi runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

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
    # Folders with source only: a checkout that predates a move keeps the old folders with
    # nothing but their ignored __pycache__ (git removes files, not untracked leftovers).
    folders = [
        p
        for p in PROGRAM_DIR.rglob("*")
        if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))
    ]
    assert folders
    assert [f for f in folders if not (f / "__init__.py").exists()] == []


def test_program_directory_names_cannot_shadow_installed_packages() -> None:
    """Pulumi puts infra/ first on sys.path; `__main__.py` takes it off before importing."""
    text = (PROGRAM_DIR / "__main__.py").read_text()
    assert text.index("sys.path[:]") < text.index("import pulumi")


# Folders whose comments and docstrings the citation rule reads (generated and cache files skipped).
CITING_FOLDERS = ("infra", "policy", "tests")
SKIPPED_PARTS = frozenset({"__pycache__", "venv", ".venv", ".pytest_cache", ".mypy_cache"})
# An entry of a list of known cloud traps cited by its number, or that list's file: neither is
# part of this repository, so a newcomer cannot follow the reference (examples in the test
# below). Spelled in pieces so this file does not match its own rule.
PITFALL_CITATION = re.compile(
    "pit" + r"falls?\s*(?:list\s*)?(?:#|no\.?|number)?\s*\d|cloud-" + "pit" + "falls",
    re.IGNORECASE,
)


def _text_files(folders: tuple[str, ...]) -> list[Path]:
    return sorted(
        path
        for folder in folders
        for path in (REPO_ROOT / folder).rglob("*")
        if path.is_file() and not SKIPPED_PARTS.intersection(path.parts)
    )


def test_no_comment_cites_a_numbered_pitfall_list() -> None:
    """A comment says why in its own words, instead of pointing into a list kept elsewhere."""
    citing = set()
    for path in _text_files(CITING_FOLDERS):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary test data
        if PITFALL_CITATION.search(text):
            citing.add(path.relative_to(REPO_ROOT).as_posix())
    assert not citing


def test_the_citation_rule_recognises_a_citation() -> None:
    trap = "pit" + "fall"  # in pieces, as above
    examples = (
        f"see {trap} 12",
        f"({trap.upper()}S #3, #4)",
        f"{trap.title()} no. 2",
        f"CLOUD-{trap.upper()}S.md",
    )
    for text in examples:
        assert PITFALL_CITATION.search(text), text
    assert not PITFALL_CITATION.search("a known trap of the ALB: the idle timeout")


# The longest a function of the Pulumi program may be: a composer or a component constructor
# reads as a list of named stages, each a function of its own (deploy_fargate, deploy_gke and
# KubernetesApp.__init__ are 40-60 lines after their split).
MAX_FUNCTION_LINES = 120
# Component constructors that still declare all their resources in one body, each with the
# length it has now as its ceiling: they may shrink, never grow. Splitting one into stages
# (as KubernetesApp was) removes its entry.
LONG_FUNCTIONS = {
    "infra/targets/gke/model_store.py::ModelStore.__init__": 168,
    "infra/targets/fargate/service.py::FargateService.__init__": 149,
    "infra/targets/gke/cluster.py::GkeCluster.__init__": 145,
    "infra/targets/fargate/config.py::read_fargate_settings": 139,
    "infra/targets/fargate/network.py::VpcNetwork.__init__": 134,
}


def _function_lengths(path: Path) -> dict[str, int]:
    """`path::Qualified.name` → lines (decorators excluded) of every function in `path`."""
    lengths: dict[str, int] = {}
    relative = path.relative_to(REPO_ROOT).as_posix()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                end = child.end_lineno or child.lineno
                lengths[f"{relative}::{prefix}{child.name}"] = end - child.lineno + 1
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(path.read_text()), "")
    return lengths


def test_no_function_of_the_program_grows_past_the_limit() -> None:
    lengths = {
        name: length
        for path in sorted(PROGRAM_DIR.rglob("*.py"))
        for name, length in _function_lengths(path).items()
    }
    too_long = {
        name: length
        for name, length in lengths.items()
        if length > LONG_FUNCTIONS.get(name, MAX_FUNCTION_LINES)
    }
    assert not too_long, f"split into named stages (limit {MAX_FUNCTION_LINES} lines): {too_long}"
    # An exemption for a function that is gone or short again is stale: drop it.
    stale = {name for name in LONG_FUNCTIONS if lengths.get(name, 0) <= MAX_FUNCTION_LINES}
    assert not stale, stale
