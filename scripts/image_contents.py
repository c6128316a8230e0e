"""Reproduce the image's runtime dependency stage without Docker and report what it contains.

Runs the same `uv sync` commands as the `runtime-deps` stage of service/Dockerfile, on a copy
of exactly the files .dockerignore lets into the build context, then prints the size of each
installed package. Usage: uv run python scripts/image_contents.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTEXT_FILES = ["pyproject.toml", "uv.lock", "service/pyproject.toml", "service/README.md"]
SYNC = [
    "uv",
    "sync",
    "--frozen",
    "--no-dev",
    "--package",
    "modelship",
    "--extra",
    "cloud",
    "--quiet",
]


def build_runtime_venv(workdir: Path) -> Path:
    """The /src/.venv that the runtime image copies, built as the Dockerfile builds it."""
    for name in CONTEXT_FILES:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, workdir / name)
    subprocess.run([*SYNC, "--no-install-workspace"], cwd=workdir, check=True)  # noqa: S603
    shutil.copytree(REPO / "service" / "src", workdir / "service" / "src")
    subprocess.run([*SYNC, "--no-editable"], cwd=workdir, check=True)  # noqa: S603
    return workdir / ".venv"


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        venv = build_runtime_venv(Path(tmp))
        site = next((venv / "lib").glob("python3.*/site-packages"))
        sizes = sorted(
            ((tree_bytes(p) if p.is_dir() else p.stat().st_size, p.name) for p in site.iterdir()),
            reverse=True,
        )
        total = tree_bytes(venv)
        print(f"runtime virtual environment: {total / 2**20:.0f} MiB")
        for size, name in sizes[:12]:
            print(f"  {size / 2**20:7.1f} MiB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
