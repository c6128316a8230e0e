"""The benchmark command runs end to end and prints its table (a smoke run: no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.tools import require

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_quick_benchmark_prints_the_table(tmp_path: Path) -> None:
    require("wrk")  # bench/run.py drives both servers with it
    table = tmp_path / "table.md"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--quick",
            "--cache",
            str(tmp_path / "cache"),
            "--output",
            str(table),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for row in ("| modelship | 1 |", "| ceiling | 1 |", "In-process floor"):
        assert row in run.stdout
    assert "| 0 |" in run.stdout  # no errors column > 0 for either server
    assert table.read_text().strip() == run.stdout.strip()
