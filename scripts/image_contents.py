"""Reproduce the image's runtime dependency stage without Docker and report what it contains.

Runs the same `uv sync` commands as the `runtime-deps` stage of service/Dockerfile (or, with
`--training`, the `train-deps` stage of the training image), on a copy
of exactly the files .dockerignore lets into the build context, then prints the size of each
installed package. Usage: uv run python scripts/image_contents.py [--training]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTEXT_FILES = ["pyproject.toml", "uv.lock", "service/pyproject.toml", "service/README.md"]
RUNTIME_EXTRAS = ("cloud",)
TRAINING_EXTRAS = ("train", "cloud")


def _sync(extras: tuple[str, ...]) -> list[str]:
    extra_args = [arg for extra in extras for arg in ("--extra", extra)]
    return ["uv", "sync", "--frozen", "--no-dev", "--package", "modelship", *extra_args, "--quiet"]


def build_venv(workdir: Path, extras: tuple[str, ...] = RUNTIME_EXTRAS) -> Path:
    """The /src/.venv an image stage copies, built as the Dockerfile builds it.

    `RUNTIME_EXTRAS` replays `runtime-deps` (the service image), `TRAINING_EXTRAS` replays
    `train-deps` (the training image).
    """
    for name in CONTEXT_FILES:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, workdir / name)
    subprocess.run([*_sync(extras), "--no-install-workspace"], cwd=workdir, check=True)  # noqa: S603
    shutil.copytree(REPO / "service" / "src", workdir / "service" / "src")
    subprocess.run([*_sync(extras), "--no-editable"], cwd=workdir, check=True)  # noqa: S603
    return workdir / ".venv"


def build_runtime_venv(workdir: Path) -> Path:
    """The service image's virtual environment."""
    return build_venv(workdir, RUNTIME_EXTRAS)


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> int:
    training = "--training" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        venv = build_venv(Path(tmp), TRAINING_EXTRAS if training else RUNTIME_EXTRAS)
        site = next((venv / "lib").glob("python3.*/site-packages"))
        sizes = sorted(
            ((tree_bytes(p) if p.is_dir() else p.stat().st_size, p.name) for p in site.iterdir()),
            reverse=True,
        )
        total = tree_bytes(venv)
        print(
            f"{'training' if training else 'runtime'} virtual environment: {total / 2**20:.0f} MiB"
        )
        for size, name in sizes[:12]:
            print(f"  {size / 2**20:7.1f} MiB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
