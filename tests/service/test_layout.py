"""The service package keeps its layers: import contracts (`.importlinter`, run by
`lint-imports`), no import cycle, every folder a package, tests mirroring the package, and a
server that loads no training library (docs/service.md#layers)."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "service" / "src" / "modelship"
TESTS_DIR = Path(__file__).resolve().parent
TOP_LEVEL_TESTS = {
    "test_container.py",  # the Dockerfile
    "test_e2e.py",  # the whole service, trained and served
    "test_layout.py",  # the package's structure
    "test_model_quality.py",  # modelship.model_quality
    "test_quality.py",  # modelship.quality, on the captures and labels of a served model
}


def test_the_import_contracts_hold() -> None:
    """Layers, the two independent transports, and the forbidden imports (`.importlinter`)."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_package_has_no_import_cycle() -> None:
    """Every import counts, at module level or inside a function, as import-linter counts them."""
    graph = grimp.build_graph("modelship", cache_dir=None)
    modules = graph.modules
    imports = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    # A package's `__init__` importing its own modules is not a cycle between layers.
    imports = {m: {i for i in found if not i.startswith(m + ".")} for m, found in imports.items()}
    assert _cycles(imports) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _source_folders(root: Path) -> list[Path]:
    # Folders with source only: a checkout that predates a move keeps the old folders with
    # nothing but their ignored __pycache__ (git removes files, not untracked leftovers).
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))
    ]


def test_every_folder_of_the_package_is_a_package() -> None:
    folders = _source_folders(PACKAGE_DIR)
    assert folders
    assert [f for f in folders if not (f / "__init__.py").exists()] == []


def test_the_tests_mirror_the_package() -> None:
    """tests/service/<layer>/... holds the tests of modelship/<layer>/... and nothing else."""
    package = {p.relative_to(PACKAGE_DIR) for p in _source_folders(PACKAGE_DIR)}
    tests = {p.relative_to(TESTS_DIR) for p in _source_folders(TESTS_DIR)} - {Path(".")}
    assert tests, "the service's tests sit in folders named as the package's"
    assert tests <= package, sorted(map(str, tests - package))
    flat = sorted(p.name for p in TESTS_DIR.glob("test_*.py"))
    # What stays at the top tests the package as a whole, or a top-level module of it.
    assert set(flat) <= TOP_LEVEL_TESTS, sorted(set(flat) - TOP_LEVEL_TESTS)


def test_pytest_collects_every_test_folder(pytestconfig: pytest.Config) -> None:
    """No folder of tests/ matches pytest's norecursedirs: the default list holds "build", so
    tests/service/build (the build layer's tests) was once silently never run."""
    ignored = pytestconfig.getini("norecursedirs")
    folders = [
        p for p in REPO_ROOT.joinpath("tests").rglob("*") if p.is_dir() and any(p.glob("test_*.py"))
    ]
    assert folders
    skipped = [
        str(f.relative_to(REPO_ROOT))
        for f in folders
        for part in f.relative_to(REPO_ROOT).parts
        if any(fnmatch.fnmatch(part, pattern) for pattern in ignored)
    ]
    assert skipped == [], f"pytest would not collect {skipped} (norecursedirs: {ignored})"


def test_the_server_loads_no_training_or_plotting_library(regression_artifact: Path) -> None:
    """What a `modelship serve` worker imports, in a fresh process: the app built from the
    environment as uvicorn's factory builds it, and the uvicorn adapter."""
    probe = (
        "import sys\n"
        "from modelship.transport.http.app import app_from_env\n"
        "import modelship.transport.uvicorn.protocol, modelship.transport.uvicorn.listener\n"
        "import modelship.transport.uvicorn.server\n"
        "app_from_env()\n"
        "heavy = {'pandas', 'sklearn', 'matplotlib', 'skl2onnx', 'lightgbm', 'xgboost'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"MODELSHIP_ARTIFACT": str(regression_artifact), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
