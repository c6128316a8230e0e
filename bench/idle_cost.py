"""CPU of the same work right after an idle moment, against back to back (docs/capacity.md).

    uv run python bench/idle_cost.py [ARTIFACT ...]

For each artifact (default: artifacts/default, which `uv run modelship train` makes), a single-row
`Predictor.predict` in one thread, and a plain Python loop with a numpy sum for comparison: the
thread's CPU time per call (`time.thread_time`) with no pause between calls and after sleeping
1, 3 and 10 ms. On a virtual machine whose idle vCPU is halted and handed back to the host, the
call after a pause runs on cold caches; that time counts as the process's CPU, and against a
container's CPU quota. Prints the idle driver the kernel uses.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

GAPS_MS = (0.0, 1.0, 3.0, 10.0)
CALLS = 300
IDLE_DRIVER = Path("/sys/devices/system/cpu/cpuidle/current_driver")


def cpu_per_call(call: Callable[[int], object], gap_ms: float, calls: int = CALLS) -> float:
    """Mean thread CPU µs of `call(i)`, each after sleeping `gap_ms` (none for 0)."""
    total = 0.0
    for i in range(calls):
        if gap_ms:
            time.sleep(gap_ms / 1000)
        started = time.thread_time()
        call(i)
        total += time.thread_time() - started
    return total / calls * 1e6


def plain_work(values: np.ndarray) -> Callable[[int], object]:
    """About 20 µs of Python and numpy, no onnxruntime."""

    def work(_: int) -> float:
        total = 0.0
        for i in range(400):
            total += i * 0.5
        return float((values * 2).sum()) + total

    return work


def predict_call(path: Path) -> Callable[[int], object]:
    from modelship.build.measure import synthetic_rows
    from modelship.model import artifact
    from modelship.model.codecs.records import RecordsCodec
    from modelship.model.predictor import Predictor

    predictor = Predictor(artifact.load(path))
    codec = RecordsCodec(predictor.schema)
    batches = [codec.decode([row]) for row in synthetic_rows(predictor.card, 64, seed=1)]
    return lambda i: predictor.predict(batches[i % len(batches)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="artifact directories")
    args = parser.parse_args()
    from modelship.contracts.settings import DEFAULT_ARTIFACT
    from modelship.model import artifact

    args.artifacts = args.artifacts or [DEFAULT_ARTIFACT]
    missing = [str(path) for path in args.artifacts if not artifact.exists(path)]
    if missing:
        parser.error(
            f"no artifact at {', '.join(missing)} (make one with `uv run modelship train`)"
        )
    driver = IDLE_DRIVER.read_text().strip() if IDLE_DRIVER.is_file() else "unknown"
    print(f"idle driver: {driver}; {CALLS} calls per cell; thread CPU µs per call")
    print("| work | " + " | ".join(f"after {gap:g} ms idle" for gap in GAPS_MS) + " |")
    print("|---|" + "---:|" * len(GAPS_MS))
    work = {"Python loop + numpy sum": plain_work(np.random.default_rng(0).random(2000))}
    for path in args.artifacts:
        work[f"single-row predict, {path.name}"] = predict_call(path)
    for name, call in work.items():
        call(0)  # loaded and warm
        cells = [f"{cpu_per_call(call, gap):.0f}" for gap in GAPS_MS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
