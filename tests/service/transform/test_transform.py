"""Batch transform (`modelship predict ... -o PREFIX [--shard I/N]`): the shard arithmetic at
its edges, parts and manifests, bad rows, and the CLI against local files."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from pathlib import Path

import pytest

from modelship import transform
from modelship.transform import Shard, TransformError
from tests.service.cli.test_cli import assert_one_line_error, modelship

HEADER = "age,sex,bmi,children,smoker,region"
ROWS = [
    "19,female,27.9,0,yes,southwest",
    "18,male,33.77,1,no,southeast",
    "28,male,33,3,no,southeast",
    "33,male,22.705,0,no,northwest",
    "32,male,28.88,0,no,northwest",
]


def _data_lines(path: Path, count: int) -> list[list[bytes]]:
    """Each shard's data lines, read as a worker reads them."""
    source = transform.open_input(str(path))
    shards = []
    for index in range(count):
        lines: list[bytes] = []
        for segment in transform.segments(source.files, Shard(index, count)):
            read = transform.read_segment(source, segment, sharded=count > 1)
            lines.extend(b"".join(read.lines).splitlines(keepends=True))
        shards.append(lines)
    return shards


def _ranges(path: Path, count: int) -> list[tuple[int, int]]:
    source = transform.open_input(str(path))
    return [
        (s.start, s.end)
        for index in range(count)
        for s in transform.segments(source.files, Shard(index, count))
    ]


VARIANTS = {
    "plain": (HEADER + "\n" + "\n".join(ROWS) + "\n").encode(),
    "no final newline": (HEADER + "\n" + "\n".join(ROWS)).encode(),
    "crlf": (HEADER + "\r\n" + "\r\n".join(ROWS) + "\r\n").encode(),
    "blank lines": (HEADER + "\n" + "\n\n".join(ROWS) + "\n\n").encode(),
    "quoted commas": (
        HEADER + "\n" + "\n".join(r.replace("male", '"ma,le"') for r in ROWS)
    ).encode(),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "gzip"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shards_cover_every_line_exactly_once_in_order(
    variant: str, compressed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = VARIANTS[variant]
    path = tmp_path / ("in.csv.gz" if compressed else "in.csv")
    # Small gzip blocks, and two gzip members, so that shards start inside the file.
    monkeypatch.setattr(transform.inputs, "GZIP_BLOCK_BYTES", 7)
    middle = len(content) // 2
    path.write_bytes(
        gzip.compress(content[:middle]) + gzip.compress(content[middle:]) if compressed else content
    )
    expected = [
        line if line.endswith(b"\n") else line + b"\n"
        for line in content.splitlines(keepends=True)[1:]
    ]
    size = path.stat().st_size
    # N from 1 to more shards than the file has bytes (most shards then own no line at all).
    for count in [*range(1, len(ROWS) + 4), size + 3]:
        shards = _data_lines(path, count)
        assert [line for lines in shards for line in lines] == expected, (variant, count)
        ranges = _ranges(path, count)
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_a_quoted_line_break_is_refused_sharded_and_read_unsharded(
    regression_artifact: Path, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text(
        "note,age,sex,bmi,children,smoker,region\n"
        + "\n".join(f'"row {i}",{r}' for i, r in enumerate(ROWS[:2]))
        + '\n"two\nlines",'
        + ROWS[2]
        + "\n"
    )
    with pytest.raises(TransformError, match="score that file unsharded"):
        _data_lines(path, 2)
    # The shard whose range holds the quoted lines refuses; the run never completes.
    runs = [
        modelship(
            "predict",
            str(regression_artifact),
            str(path),
            "-o",
            str(tmp_path / "s"),
            "--shard",
            f"{index}/2",
        )
        for index in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 2]
    assert_one_line_error(runs[1], 2, "quoted field holding a line break")
    assert "score that file unsharded (without --shard)" in runs[1].stderr
    assert not (tmp_path / "s" / transform.MANIFEST).exists()

    whole = modelship("predict", str(regression_artifact), str(path), "-o", str(tmp_path / "w"))
    assert whole.returncode == 0, whole.stderr
    rows = list(csv.reader(io.StringIO((tmp_path / "w/part-00000-of-00001-00000.csv").read_text())))
    assert [row[0] for row in rows[1:]] == ["row 0", "row 1", "two\nlines"]


def _write_insurance_rows(path: Path, rows: list[str], header: str = HEADER) -> None:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def test_parts_manifest_and_a_rerun_shard(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    single = tmp_path / "single.csv"
    whole = modelship("predict", str(regression_artifact), str(insurance_csv), "-o", str(single))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "out"
    for index in range(3):
        run = modelship(
            "predict", str(regression_artifact), str(insurance_csv), "-o", str(out),
            "--shard", f"{index}/3",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert (out / transform.MANIFEST).exists() == (index == 2)
    assert "complete: 1338 rows in 3 parts" in run.stderr
    manifest = json.loads((out / transform.MANIFEST).read_text())
    assert manifest["complete"] and manifest["shards"] == 3
    assert manifest["rows_in"] == manifest["rows_out"] == 1338
    assert [p["part"] for p in manifest["parts"]] == [
        f"part-0000{i}-of-00003-00000.csv" for i in range(3)
    ]
    assert sum(p["rows_out"] for p in manifest["parts"]) == 1338
    assert manifest["model"]["name"] == "insurance-charges"
    joined = [(out / p["part"]).read_text().splitlines() for p in manifest["parts"]]
    assert [joined[0][0], *(line for lines in joined for line in lines[1:])] == (
        single.read_text().splitlines()
    )

    # Re-running a shard writes its part again and nothing else.
    before = {p: p.stat().st_mtime_ns for p in out.glob("part-*")}
    again = modelship(
        "predict", str(regression_artifact), str(insurance_csv), "-o", str(out), "--shard", "1/3"
    )
    assert again.returncode == 0, again.stderr
    changed = {p.name for p in out.glob("part-*") if p.stat().st_mtime_ns != before[p]}
    assert changed == {"part-00001-of-00003-00000.csv"}
    assert json.loads((out / transform.MANIFEST).read_text()) == manifest


def test_merge_names_the_missing_shards(
    regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = modelship(
        "predict", str(regression_artifact), str(insurance_csv), "-o", str(out), "--shard", "0/4"
    )
    assert first.returncode == 0, first.stderr
    merged = modelship(
        "predict", str(regression_artifact), str(insurance_csv), "-o", str(out), "--merge"
    )
    assert_one_line_error(merged, 2, "3 of 4 shards have not finished (no manifest yet): 1, 2, 3")
    assert not (out / transform.MANIFEST).exists()


def test_bad_rows_fail_or_go_to_the_rejects_file(regression_artifact: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    _write_insurance_rows(
        data,
        [ROWS[0], "forty,male,30,0,no,southeast", ROWS[1], "30,male,30,0,no", ROWS[2], ROWS[3]],
    )
    failed = modelship("predict", str(regression_artifact), str(data), "-o", str(tmp_path / "f"))
    assert_one_line_error(failed, 2, "line 5: has 5 values but the header has 6 columns")
    assert not (tmp_path / "f" / transform.MANIFEST).exists()
    assert not list((tmp_path / "f").glob("part-*"))  # a failed part is never published
    _write_insurance_rows(tmp_path / "value.csv", [ROWS[0], "forty,male,30,0,no,southeast"])
    failed = modelship("predict", str(regression_artifact), str(tmp_path / "value.csv"))
    assert_one_line_error(failed, 2, "line 3, field 'age': expected a number, got 'forty'")

    out = tmp_path / "s"
    skipped = modelship(
        "predict", str(regression_artifact), str(data), "-o", str(out), "--on-error", "skip",
        "--chunk-rows", "4",
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    manifest = json.loads((out / transform.MANIFEST).read_text())
    assert (manifest["rows_in"], manifest["rows_out"], manifest["rejected"]) == (6, 4, 2)
    part = manifest["parts"][0]
    scored = list(csv.reader((out / part["part"]).open()))
    assert [row[0] for row in scored[1:]] == ["19", "18", "28", "33"]  # in order, bad rows out
    rejects = list(csv.DictReader((out / part["rejects"]).open()))
    assert [r["line"] for r in rejects] == ["3", "5"]
    assert "expected a number, got 'forty'" in rejects[0]["problem"]
    assert "has 5 values but the header has 6 columns" in rejects[1]["problem"]
    assert rejects[0]["row"] == "forty,male,30,0,no,southeast"

    one = tmp_path / "one.csv"
    single = modelship(
        "predict", str(regression_artifact), str(data), "-o", str(one), "--on-error", "skip"
    )
    assert single.returncode == 0, single.stderr
    assert "rejected 2 rows" in single.stderr
    assert len((tmp_path / "one.rejects.csv").read_text().splitlines()) == 3


def test_a_prefix_of_files_plain_and_gzip(regression_artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _write_insurance_rows(folder / "a.csv", ROWS[:3])
    (folder / "b.csv.gz").write_bytes(
        gzip.compress((HEADER + "\n" + "\n".join(ROWS) + "\n").encode())
    )
    (folder / "notes.txt").write_text("not a CSV: left out")
    out = tmp_path / "out"
    for index in range(2):
        run = modelship(
            "predict",
            str(regression_artifact),
            str(folder),
            "-o",
            str(out),
            "--shard",
            f"{index}/2",
        )
        assert run.returncode == 0, run.stderr
    manifest = json.loads((out / transform.MANIFEST).read_text())
    assert [f["uri"].rsplit("/", 1)[-1] for f in manifest["input"]["files"]] == [
        "a.csv",
        "b.csv.gz",
    ]
    ages = [
        row[0]
        for part in manifest["parts"]
        for row in list(csv.reader((out / part["part"]).open()))[1:]
    ]
    assert ages == [r.split(",")[0] for r in ROWS[:3] + ROWS]

    _write_insurance_rows(folder / "c.csv", ROWS, header="sex,age,bmi,children,smoker,region")
    mixed = modelship("predict", str(regression_artifact), str(folder), "-o", str(tmp_path / "m"))
    assert_one_line_error(mixed, 2, "its header differs from")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--shard", "4/4", "-o", "{tmp}/o"], "expected I/N with 0 <= I < N"),
        (["--shard", "x", "-o", "{tmp}/o"], "expected I/N with 0 <= I < N"),
        (["--shard", "0/2", "-o", "{tmp}/o.csv"], "give -o a directory or a prefix"),
        (["--shard", "0/2"], "give -o a directory or a prefix"),
        (["--on-error", "skip"], "--on-error skip with standard output needs --rejects FILE"),
    ],
)
def test_bad_arguments_are_one_line(
    args: list[str], words: str, regression_artifact: Path, insurance_csv: Path, tmp_path: Path
) -> None:
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = modelship("predict", str(regression_artifact), str(insurance_csv), *filled)
    assert result.returncode == 2
    assert words in result.stderr
