"""Scoring one shard of the batch transform, and merging the shards' manifests into the run's."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelship.errors import ModelshipError
from modelship.model import artifact, store
from modelship.model.codecs.base import Warnings
from modelship.model.predictor import Predictor
from modelship.serving.scoring import CsvSummary, predict_csv
from modelship.transform.base import FORMAT, MANIFEST, SHARDS_DIR, Shard, TransformError
from modelship.transform.inputs import (
    Input,
    LineStream,
    Segment,
    SegmentLines,
    ended,
    peek_data,
    read_segment,
    segments,
    store_call,
    whole_file,
)
from modelship.transform.outputs import Output, RejectsWriter, json_bytes


def load_model(model: str, cache: Path) -> artifact.Artifact:
    """An artifact directory, or a model version URI (fetched and verified)."""
    if store.is_remote(model) or model.startswith("file://"):
        return store.fetch(model, cache)
    return artifact.load(Path(model))


def model_record(loaded: artifact.Artifact, model: str) -> dict[str, Any]:
    card = loaded.card
    return {
        "uri": model,
        "name": card.name,
        "version": card.version,
        "onnx_sha256": card.artifact.onnx_sha256,
    }


@dataclass(frozen=True)
class ShardRun:
    """One worker's run: which model, input, output and shard, and how to treat bad rows."""

    predictor: Predictor
    model: dict[str, Any]
    """`model_record`: written into the manifests, which the merge compares."""
    source: Input
    output: Output
    shard: Shard
    chunk_rows: int
    on_error: str


def run_shard(run: ShardRun) -> dict[str, Any]:
    """Score one shard into its part files, then write its manifest; returns the manifest."""
    source, output, shard = run.source, run.output, run.shard
    sharded = shard.count > 1
    records: list[dict[str, Any]] = []
    warnings = Warnings()
    header: bytes | None = None
    for segment in segments(source.files, shard):
        read = read_segment(source, segment, sharded)
        if header is None:
            header = read.header
        elif read.header.rstrip(b"\r\n") != header.rstrip(b"\r\n"):
            raise TransformError(
                f"{segment.file.uri}: its header differs from {source.files[0].uri}'s; every "
                "file under one input prefix needs the same columns in the same order"
            )
        has_data, lines = peek_data(read.lines)
        name = f"part-{shard.name}-{segment.file_index:05d}.csv"
        record: dict[str, Any] = {
            "file": segment.file_index,
            "start": segment.start,
            "end": segment.end,
            "part": None,
            "rows_in": 0,
            "rows_out": 0,
            "rejected": 0,
            "rejects": None,
        }
        if has_data:
            summary, rejects = _score_segment(run, read, lines, name, segment)
            warnings.merge(summary.warnings)
            record.update(
                part=name,
                rows_in=summary.rows + summary.rejected,
                rows_out=summary.rows,
                rejected=summary.rejected,
                rejects=rejects,
                first_row_byte=read.first_line_byte,
            )
        else:
            for _ in lines:  # read to the end of the range, so the checksum covers it
                pass
        record["sha256"] = read.digest.hexdigest()
        records.append(record)
    manifest = {
        "format": FORMAT,
        "shard": shard.index,
        "shards": shard.count,
        "model": run.model,
        "input": {"uri": source.uri, "files": [f.describe() for f in source.files]},
        "on_error": run.on_error,
        "segments": records,
        "rows_in": sum(r["rows_in"] for r in records),
        "rows_out": sum(r["rows_out"] for r in records),
        "rejected": sum(r["rejected"] for r in records),
        "warnings": warnings.as_json(),
    }
    # After its parts: a shard with a manifest is complete.
    output.put(f"{SHARDS_DIR}/{shard.name}.json", json_bytes(manifest))
    return manifest


def _score_segment(
    run: ShardRun, read: SegmentLines, lines: Iterator[bytes], name: str, segment: Segment
) -> tuple[CsvSummary, str | None]:
    output, shard = run.output, run.shard
    rejects_name = "rejects" + name.removeprefix("part")
    where = (
        f"{segment.file.uri}"
        if segment.start == 0
        else f"{segment.file.uri}, shard {shard.index}/{shard.count} (line numbers count from "
        f"the shard's first row, at byte {read.first_line_byte}, as line 2)"
    )
    with contextlib.ExitStack() as stack:
        rejects = RejectsWriter(lambda: stack.enter_context(output.text_writer(rejects_name)))
        stream = io.BufferedReader(LineStream(itertools.chain([ended(read.header)], lines)))
        try:
            with output.text_writer(name) as sink:
                summary = predict_csv(
                    run.predictor,
                    stream,
                    sink,
                    run.chunk_rows,
                    reject=rejects if run.on_error == "skip" else None,
                )
        except ModelshipError as exc:
            exc.message = f"{where}: {exc.message}"
            exc.args = (exc.message,)
            raise
    return summary, rejects_name if rejects.opened else None


def merge(output: Output, shards: int | None = None) -> dict[str, Any]:
    """Check that every shard's manifest is there and agrees, then write `_manifest.json`."""
    found: dict[int, list[str]] = {}
    prefix = output.key(SHARDS_DIR) + "/" if output.location.scheme != "file" else SHARDS_DIR
    for key in store_call(output.uri, lambda: output.backend.keys(prefix)):
        stem = key.rsplit("/", 1)[-1].removesuffix(".json")
        index, _, count = stem.partition("-of-")
        if index.isdigit() and count.isdigit():
            found.setdefault(int(count), []).append(stem)
    if shards is None:
        if len(found) != 1:
            counts = ", ".join(str(c) for c in sorted(found)) or "none"
            raise TransformError(
                f"{output.uri}: expected the manifests of one sharded run under {SHARDS_DIR}/, "
                f"found runs of {counts} shards"
            )
        shards = next(iter(found))
    manifests = []
    missing = []
    for index in range(shards):
        name = f"{SHARDS_DIR}/{Shard(index, shards).name}.json"
        if Shard(index, shards).name not in found.get(shards, []):
            missing.append(index)
            continue
        manifests.append(json.loads(output.read(name)))
    if missing:
        listed = ", ".join(map(str, missing[:20])) + (" …" if len(missing) > 20 else "")
        raise TransformError(
            f"{output.uri}: {len(missing)} of {shards} shards have not finished (no manifest "
            f"yet): {listed}; run them (re-running a shard is safe), then merge again"
        )
    first = manifests[0]
    for manifest in manifests[1:]:
        for key in ("model", "input", "on_error"):
            if manifest[key] != first[key]:
                raise TransformError(
                    f"{output.uri}: shard {manifest['shard']} ran with a different {key} than "
                    f"shard 0 ({json.dumps(manifest[key])[:200]} vs "
                    f"{json.dumps(first[key])[:200]}); re-run it with the same arguments"
                )
    files = first["input"]["files"]
    segments_all = [(m["shard"], s) for m in manifests for s in m["segments"]]
    _check_tiling(output.uri, files, [s for _, s in segments_all])
    parts = [{"shard": shard, **s} for shard, s in segments_all if s["part"] is not None]
    combined = hashlib.sha256()
    for _, s in segments_all:
        combined.update(f"{s['file']}:{s['start']}-{s['end']}:{s['sha256']}\n".encode())
    whole = {s["file"]: s["sha256"] for _, s in segments_all if s["start"] == 0}
    single = {
        s["file"]
        for _, s in segments_all
        if s["start"] == 0 and s["end"] == files[s["file"]]["bytes"]
    }
    manifest = {
        "format": FORMAT,
        "complete": True,
        "shards": shards,
        "model": first["model"],
        "input": {
            "uri": first["input"]["uri"],
            "files": [
                {**f, **({"sha256": whole[i]} if i in single else {})} for i, f in enumerate(files)
            ],
            "ranges_sha256": combined.hexdigest(),
        },
        "on_error": first["on_error"],
        "parts": parts,
        "rows_in": sum(m["rows_in"] for m in manifests),
        "rows_out": sum(m["rows_out"] for m in manifests),
        "rejected": sum(m["rejected"] for m in manifests),
        "warnings": _merge_warnings(m["warnings"] for m in manifests),
    }
    output.put(MANIFEST, json_bytes(manifest))
    return manifest


def _check_tiling(uri: str, files: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
    """The shards' ranges must cover every byte of every file exactly once."""
    for number, item in enumerate(files):
        ranges = sorted((s["start"], s["end"]) for s in found if s["file"] == number)
        position = 0
        for start, end in ranges:
            if start != position:
                raise TransformError(
                    f"{uri}: the shards do not cover {item['uri']} exactly once (bytes "
                    f"{position}..{start}); re-run the shards with the same N"
                )
            position = end
        if position != item["bytes"]:
            raise TransformError(
                f"{uri}: the shards do not cover {item['uri']} to its end ({position} of "
                f"{item['bytes']} bytes)"
            )


def _merge_warnings(lists: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for groups in lists:
        for group in groups:
            key = (group["field"], group["problem"])
            if key in merged:
                merged[key]["count"] += group["count"]
            else:
                merged[key] = {k: v for k, v in group.items() if k != "rows"}
    return list(merged.values())


def warnings_summary(groups: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{g['field']}: {g['problem']} ({g['count']} row{'s' * (g['count'] > 1)})" for g in groups
    )


def predict_whole_file(
    predictor: Predictor,
    source: Input,
    sink: IO[str],
    chunk_rows: int,
    reject: RejectsWriter | None,
) -> CsvSummary:
    """Score an unsharded single file into one CSV: `modelship predict MODEL in.csv -o out.csv`."""
    try:
        return predict_csv(predictor, whole_file(source), sink, chunk_rows, reject=reject)
    except ModelshipError as exc:
        exc.message = f"{source.files[0].uri}: {exc.message}"
        exc.args = (exc.message,)
        raise


def try_merge(output: Output, shards: int) -> dict[str, Any] | None:
    """Merge if every shard is done (the last shard to finish writes `_manifest.json`)."""
    try:
        return merge(output, shards)
    except TransformError:
        return None
