"""bench/feedback_cost.py runs end to end on a small window (no timing asserted: the CPU figures
depend on the machine) and refuses bad arguments."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.feedback_cost", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_it_prints_the_cost_over_the_windows_fill_and_keeps_the_window() -> None:
    run = _run("--windows", "3", "--rate", "500", "--window-rows", "20000")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "60000 single-record answers" in run.stdout
    assert "remembered at the end 20000" in run.stdout
    assert len(re.findall(r"^\s+\d\.\d\d-\s*\d\.\d\d\s+\d+\.\d", run.stdout, re.M)) == 10
    assert re.search(r"^flat: .* = \d+\.\d\d$", run.stdout, re.M), run.stdout


def test_bad_arguments_are_refused_with_a_usage_error() -> None:
    run = _run("--rate", "0")
    assert run.returncode == 2
    assert "--rate, --windows and --window-rows must be positive" in run.stderr
