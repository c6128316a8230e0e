"""A 1,000,000-row CSV (plain and gzip) scored in 4 shards by the CLI against S3 on 127.0.0.1:
every row exactly once and in order, predictions equal /predict/batch, memory bounded, and a
shard killed mid-upload and run again leaves no duplicate."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.batch import HEADER as BENCH_HEADER
from bench.batch import csv_bytes
from modelship import transform
from tests.service.conftest import make_client
from tests.service.object_stores import BUCKET, s3_client, s3_server

# 200,000 rows in CI; the 1,000,000-row run is the same test with
# MODELSHIP_BATCH_TEST_ROWS=1000000 (docs/batch.md has its numbers).
ROWS = int(os.environ.get("MODELSHIP_BATCH_TEST_ROWS", "200000"))
SHARDS = 4
# `note` pads each row to ~250 bytes, so that every shard's part (over 8 MiB) goes up as a
# multipart upload, and a shard can be killed in the middle of one.
HEADER = f"{BENCH_HEADER},note"
NOTE = "padding-" * 24
# More than the CLI needs to read, parse and write everything in memory would take several times
# over (the plain file alone is ~35 MB, its rows as Python lists ~10x that).
MAX_EXTRA_RSS_MB = 64


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[dict[str, str], Any]]:
    with s3_server() as env:
        yield env, s3_client(env)


class _Cli:
    """The CLI as a subprocess, with the peak of its own memory (`VmHWM`, the kernel's
    high-water mark of the process's address space) sampled from start to exit by a thread.
    `getrusage`'s `ru_maxrss` would not do: it includes the pytest process it was forked from."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelship", "predict", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        self.peak_kb = 0
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.process.pid}/status")
        while self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            time.sleep(0.02)

    def finish(self) -> tuple[int, str, float]:
        """Exit code, stderr and the peak RSS in MB."""
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        code = self.process.wait()
        self._sampler.join()
        return code, stderr, self.peak_kb / 1024


def _part_rows(client: Any, key: str) -> list[bytes]:
    lines: list[bytes] = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "gzip"])
def test_a_million_rows_in_four_shards(
    compressed: bool,
    s3: tuple[dict[str, str], Any],
    regression_artifact: Path,
    insurance_csv: Path,
    tmp_path: Path,
) -> None:
    env, client = s3
    data = csv_bytes(ROWS, note=NOTE)
    key = "data/export.csv.gz" if compressed else "data/export.csv"
    client.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(data, 1) if compressed else data)
    source = f"s3://{BUCKET}/{key}"
    out = f"s3://{BUCKET}/outputs/run-{'gz' if compressed else 'csv'}/"
    prefix = out.removeprefix(f"s3://{BUCKET}/")
    model = str(regression_artifact)
    out_small = out.rstrip("/") + "-small/"

    # The baseline: the same command, through the same S3 client, on a small file.
    client.upload_file(str(insurance_csv), BUCKET, "data/small.csv")
    small = _Cli(env, model, f"s3://{BUCKET}/data/small.csv", "-o", out_small)
    code, stderr, baseline_mb = small.finish()
    assert code == 0, stderr

    killed = 2
    peaks = []
    # Two at a time (the machine has two cores); shard `killed` is killed once mid-upload.
    for pair in ([0, killed], [1, 3]):
        running = {
            index: _Cli(env, model, source, "-o", out, "--shard", f"{index}/4") for index in pair
        }
        if killed in running:
            _kill_mid_upload(
                client, running[killed], f"{prefix}part-{killed:05d}-of-00004-00000.csv"
            )
            assert running.pop(killed).finish()[0] == -signal.SIGKILL
        for cli in running.values():
            code, stderr, peak = cli.finish()
            assert code == 0, stderr
            peaks.append(peak)
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert f"{prefix}part-{killed:05d}-of-00004-00000.csv" not in listed  # never half-written
    assert f"{prefix}{transform.MANIFEST}" not in listed

    rerun = _Cli(env, model, source, "-o", out, "--shard", f"{killed}/4")
    code, stderr, peak = rerun.finish()
    assert code == 0, stderr
    peaks.append(peak)
    # A gzip file is cut at blocks of compressed bytes: a shard whose range starts no block
    # has no rows and no part (this well-compressed file has fewer blocks than there are shards).
    parts = (
        4
        if not compressed
        else len(
            json.loads(
                client.get_object(Bucket=BUCKET, Key=f"{prefix}{transform.MANIFEST}")["Body"].read()
            )["parts"]
        )
    )
    assert parts >= 2
    assert f"complete: {ROWS} rows in {parts} parts" in stderr

    manifest = json.loads(
        client.get_object(Bucket=BUCKET, Key=f"{prefix}{transform.MANIFEST}")["Body"].read()
    )
    assert (manifest["rows_in"], manifest["rows_out"], manifest["rejected"]) == (ROWS, ROWS, 0)
    assert (
        manifest["input"]["files"][0]["bytes"]
        == client.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    )

    numbers: list[int] = []
    sample: list[list[str]] = []
    header = None
    for part in manifest["parts"]:
        lines = _part_rows(client, f"{prefix}{part['part']}")
        header = header or lines[0]
        assert lines[0] == header
        assert len(lines) - 1 == part["rows_out"]
        numbers.extend(int(line[: line.index(b",")]) for line in lines[1:])
        sample.extend(line.decode().split(",") for line in lines[1 :: ROWS // 400])
    assert header == (HEADER + ",predicted_charges").encode()
    assert numbers == list(range(ROWS))  # every row exactly once, in order

    names = HEADER.split(",")[1:-1]  # the features: not the row number, not the note
    records = [
        {
            name: (value if name in ("sex", "smoker", "region") else float(value))
            for name, value in zip(names, row[1:-2], strict=True)
        }
        for row in sample
    ]
    with make_client(regression_artifact) as client_app:
        answer = client_app.post("/predict/batch", json=records)
    assert answer.status_code == 200, answer.text
    expected = [p["prediction"] for p in answer.json()["predictions"]]
    assert np.allclose([float(row[-1]) for row in sample], expected, rtol=1e-6)

    # Bounded: a quarter of the rows per shard (the last gzip one decompresses three quarters to
    # get there) needs no more memory than scoring a 1,338-row file, give or take the buffers.
    assert max(peaks) - baseline_mb < MAX_EXTRA_RSS_MB, (peaks, baseline_mb)
    print(f"peak RSS: shards {max(peaks):.0f} MB, small file {baseline_mb:.0f} MB")


def _kill_mid_upload(client: Any, cli: _Cli, key: str) -> None:
    """SIGKILL once the shard's part upload has begun (its first 8 MiB are sent)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        if any(u["Key"] == key for u in uploads):
            cli.process.send_signal(signal.SIGKILL)
            return
        assert cli.process.poll() is None, "the shard finished before it could be killed"
        time.sleep(0.05)
    raise AssertionError("the shard never started uploading")
