"""bench/idle_cost.py prints its table for real artifacts and refuses a missing one by name
(a smoke run: the machine decides the figures, none is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "idle_cost.py"), *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_prints_a_row_per_artifact(
    regression_artifact: Path, classification_artifact: Path
) -> None:
    run = _run(regression_artifact, classification_artifact)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| work | after 0 ms idle")
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| Python loop + numpy sum",
        f"| single-row predict, {regression_artifact.name}",
        f"| single-row predict, {classification_artifact.name}",
    ]
    assert all(float(cell) > 0 for row in rows[1:] for cell in row.strip(" |").split(" | ")[1:])


def test_a_missing_artifact_is_named(tmp_path: Path) -> None:
    run = _run(tmp_path / "nothing-here")
    assert run.returncode == 2
    assert "nothing-here" in run.stderr and "modelship train" in run.stderr
