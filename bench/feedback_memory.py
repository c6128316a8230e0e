"""Memory and disk of the feedback join at a window of predictions (the default one unless told).

    uv run python bench/feedback_memory.py [--rows N] [--model regression|classification]

Trains the default model (or an iris classifier) into .bench-cache/feedback (once), builds the
join as a server worker does (`build_serving`, default settings) and answers N predictions
through the data plane in batches of 1,000 rows with generated 32-character request ids (the
ids `modelship serve` makes when the client sends none), writing them to the join as its thread
does, and forgetting what is past the window every ten batches (every ten seconds at 1,000
predictions a second). Then labels the latest `quality_window_rows` of them and measures live
quality once.

Printed: the worker's resident memory before and after (VmRSS: what a container limit
counts) and its peak (VmHWM), the join's files in the state directory (the SQLite file and its
write-ahead log: on disk, or in memory where the directory is a tmpfs), and per remembered
prediction. Not a timing benchmark: the figures do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
from collections import deque
from pathlib import Path
from typing import Any

from modelship.build.training.data import BUNDLED_DATA
from modelship.build.training.options import TrainOptions
from modelship.build.training.train import train
from modelship.contracts.settings import Settings
from modelship.model import artifact
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.serving.feedback import PredictionIds

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1_000
SWEEP_EVERY = 10  # batches


def _status(field: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _model(kind: str) -> Path:
    model = ROOT / ".bench-cache" / "feedback" / kind
    if not artifact.exists(model):
        if kind == "regression":
            options = TrainOptions(data=BUNDLED_DATA, target="charges", output=model)
        else:
            import pandas as pd
            from sklearn.datasets import load_iris

            bunch = load_iris(as_frame=True)
            frame = bunch.frame.drop(columns="target")
            frame["species"] = [bunch.target_names[i] for i in bunch.target]
            data = model.parent / "iris.csv"
            data.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(frame).to_csv(data, index=False)
            options = TrainOptions(data=data, target="species", output=model, model="logistic")
        train(options, lambda _: None)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=Settings().feedback_window_rows)
    parser.add_argument("--model", choices=["regression", "classification"], default="regression")
    args = parser.parse_args()
    predictor = Predictor(artifact.load(_model(args.model)))
    settings = Settings(access_log=False, monitoring=False)
    serving = build_serving(settings, predictor)
    dataplane, feedback = serving.dataplane, serving.feedback
    assert feedback is not None
    dataplane.start()  # no threads: the join is written below, as its thread would
    records = (predictor.card.examples * BATCH)[:BATCH]
    batch = dataplane.records.decode(records)
    before = _status("VmRSS")
    latest: deque[tuple[str, Any]] = deque(maxlen=settings.quality_window_rows)
    for n, _ in enumerate(range(0, args.rows, BATCH)):
        ids = PredictionIds(os.urandom(16).hex(), 0)
        result, _ = dataplane.predict(batch, ids)
        labels = result.values if result.values is not None else result.labels
        assert labels is not None
        latest.extend(zip(ids.of(BATCH), labels.tolist(), strict=True))  # its own answer
        # The window applied as the thread does every ten seconds: every ten batches here,
        # a server answering 1,000 predictions a second.
        feedback.flush(sweep=n % SWEEP_EVERY == 0)
    feedback.flush(sweep=True)
    after = _status("VmRSS")
    files = {p.name: p.stat().st_size for p in feedback.path.parent.iterdir()}
    remembered = feedback.remembered()
    report = feedback.receive(list(latest))
    quality = feedback.quality()
    total = sum(files.values())
    print(
        f"{args.model} model, {args.rows} predictions answered in batches of {BATCH}; window "
        f"{settings.feedback_window_rows} rows / {settings.feedback_window_seconds:g} s"
    )
    print(f"  remembered: {remembered}; labelled: {report.counts['joined']}")
    print(
        f"  worker resident memory: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB "
        f"after ({(after - before) / 2**20:+.1f} MiB), peak {_status('VmHWM') / 2**20:.1f} MiB"
    )
    print(
        "  state directory: "
        + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(files.items()))
        + f"; {total / max(remembered, 1):.0f} bytes per remembered prediction"
    )
    (judged,) = quality.values()
    print(f"  live quality over {judged['labelled_rows']} rows: state {judged['state']}")
    serving.stop()


if __name__ == "__main__":
    main()
