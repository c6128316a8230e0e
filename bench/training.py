"""Model search on a many-class table: time, chosen model, score, size and serving memory.

    uv run python bench/training.py [--rows 20000] [--budget 60s] [--out DIR]

Writes a synthetic table like the UCI letter-recognition data (20,000 rows, 16 numeric features,
26 classes), runs `modelship train` on it as a user would (a subprocess, default options unless
--budget is given) and prints the wall time, the leaderboard and the chosen model's footprint.
Note the machine's load (printed) when comparing runs: ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification


def many_classes_table(rows: int = 20_000, features: int = 16, classes: int = 26) -> pd.DataFrame:
    """Separable but not trivially: LightGBM reaches about 0.975 macro F1, logistic 0.972."""
    x, y = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=12,
        n_redundant=2,
        n_classes=classes,
        n_clusters_per_class=1,
        class_sep=3.0,
        flip_y=0.01,
        random_state=0,
    )
    frame = pd.DataFrame(np.round(x, 3), columns=[f"f{i:02d}" for i in range(features)])
    frame["letter"] = [string.ascii_uppercase[i % 26] + ("" if i < 26 else str(i)) for i in y]
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--budget", help="--time-budget to pass (default: modelship's)")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "modelship-bench-training"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "many-classes.csv"
    many_classes_table(args.rows).to_csv(data, index=False)
    command = [
        sys.executable,
        "-m",
        "modelship",
        "train",
        "--data",
        str(data),
        "--target",
        "letter",
    ]
    command += ["-o", str(args.out / "model")]
    if args.budget:
        command += ["--time-budget", args.budget]
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    card = json.loads((args.out / "model" / "model-card.json").read_text())
    footprint = card["footprint"]
    print(f"load average after: {os.getloadavg()}")
    print(
        f"wall time {seconds:.1f} s (search {card['search']['seconds']} s); chosen "
        f"{card['model']['kind']}; test accuracy {card['metrics']['test']['accuracy']:.4f}; "
        f"model {footprint['model_bytes'] / 2**20:.1f} MB; serving "
        f"{footprint['serving_rss_mb']:.0f} MB per worker; skipped {card['search']['skipped']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
