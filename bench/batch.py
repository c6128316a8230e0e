"""Rows per second of one batch-transform worker: `modelship predict MODEL in.csv -o PREFIX`.

    uv run python bench/batch.py                       # 1,000,000 rows, plain and gzip
    uv run python bench/batch.py --rows 200000 --s3    # also through S3 (moto on 127.0.0.1)

Generates an insurance-shaped CSV (a row number plus the model's six features), scores it
unsharded with the CLI as a subprocess (what one Job pod or ECS task runs), and prints wall time,
CPU time (user + sys of that process), rows per wall second and rows per CPU second. The last is
the number to use on a machine shared with other work: a worker that has its core to itself
runs at rows per CPU second. The model is the default gradient-boosting model trained on the
bundled data (trained first into a temporary directory, about 15 s).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = "row,age,sex,bmi,children,smoker,region"


def csv_bytes(rows: int, note: str | None = None) -> bytes:
    """`rows` insurance-shaped lines numbered by `row` (0, 1, ...), so order and duplicates can be
    checked; with `note`, a last column `note` holds it followed by the row number (padding)."""
    rng = np.random.default_rng(7)
    block = [
        f"{age},{sex},{bmi:.2f},{children},{smoker},{region}"
        for age, sex, bmi, children, smoker, region in zip(
            rng.integers(18, 65, 1000),
            rng.choice(["male", "female"], 1000),
            rng.uniform(16, 50, 1000),
            rng.integers(0, 5, 1000),
            rng.choice(["yes", "no"], 1000),
            rng.choice(["southwest", "southeast", "northwest", "northeast"], 1000),
            strict=True,
        )
    ]
    lines = zip(range(rows), itertools.cycle(block), strict=False)
    if note is None:
        header, body = HEADER, "\n".join(f"{i},{b}" for i, b in lines)
    else:
        header, body = f"{HEADER},note", "\n".join(f"{i},{b},{note}{i}" for i, b in lines)
    return f"{header}\n{body}\n".encode()


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one CLI run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "modelship", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--s3", action="store_true", help="also read and write through S3 (moto)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelship-bench-batch-") as scratch:
        root = Path(scratch)
        model = root / "model"
        subprocess.run(
            [sys.executable, "-m", "modelship", "train", "--model", "gradient_boosting",
             "-o", str(model), "-q"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        data = csv_bytes(options.rows)
        (root / "in.csv").write_bytes(data)
        (root / "in.csv.gz").write_bytes(gzip.compress(data, 6))
        runs: list[tuple[str, list[str], dict[str, str] | None]] = [
            ("local csv", [str(root / "in.csv")], None),
            ("local gzip", [str(root / "in.csv.gz")], None),
        ]
        server = None
        if options.s3:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.service.object_stores import BUCKET, s3_client, s3_server

            server = s3_server()
            env = server.__enter__()
            s3_client(env).put_object(Bucket=BUCKET, Key="data/in.csv", Body=data)
            runs.append(("s3 csv (moto)", [f"s3://{BUCKET}/data/in.csv"], env))
        size_mb = len(data) / 2**20
        print(f"{options.rows} rows, {size_mb:.1f} MB of CSV, one worker, {os.cpu_count()} cores")
        print(f"{'input':<16} {'wall s':>8} {'cpu s':>8} {'rows/s':>10} {'rows/cpu-s':>11}")
        try:
            for number, (label, source, store_env) in enumerate(runs):
                out = f"s3://{BUCKET}/outputs/bench/" if store_env else str(root / f"out-{number}")
                wall, cpu = timed(["predict", str(model), *source, "-o", out], store_env)
                print(
                    f"{label:<16} {wall:>8.1f} {cpu:>8.1f} {options.rows / wall:>10,.0f} "
                    f"{options.rows / cpu:>11,.0f}"
                )
        finally:
            if server is not None:
                server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
