"""Batch transform: score a CSV of any size (or a prefix of CSVs) from a path or a bucket.

Input: a file, a directory or an `s3://` / `gs://` / `file://` object or prefix; `.gz` files
are decompressed on the fly. It is read as a stream and scored in chunks by
`modelship.serving.scoring.predict_csv`, so memory stays bounded whatever the size.

Output, under a prefix:
  part-<shard>-of-<shards>-<file>.csv   the input rows in order, prediction column(s) appended
  rejects-<shard>-of-<shards>-<file>.csv  rows left out under `--on-error skip`, with the reason
  _shards/<shard>-of-<shards>.json       one shard's manifest, written after its parts
  _manifest.json                         written last, once every shard's manifest is there

Shards: the input's bytes (all files end to end) are cut into N equal ranges; a row belongs to
the shard whose range holds the row's first byte, so the N shards cover every row exactly once
and shard I's rows all precede shard I+1's. A gzip file cannot be entered in the middle: every
shard decompresses it from the start and keeps the lines that begin in a block of compressed
bytes inside its range (the block a line starts in is the same for every reader). A shard
re-run writes the same keys again: each object is replaced atomically, never duplicated.
A quoted field holding a line break cannot be found from the middle of a file, so a sharded
run refuses any line with an unbalanced quote; an unsharded run reads such files as usual.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from modelship.errors import ModelshipError, Problem
from modelship.model import artifact, store
from modelship.model.codecs.base import Warnings
from modelship.model.predictor import Predictor
from modelship.serving.scoring import CsvSummary, predict_csv

MANIFEST = "_manifest.json"
SHARDS_DIR = "_shards"
FORMAT = "modelship-batch-transform/1"
CSV_SUFFIXES = (".csv", ".csv.gz")
# gzip input is fed to the decompressor in blocks of this many compressed bytes; a line belongs
# to the block it starts in. Changing it changes which shard owns which line, hence in FORMAT.
GZIP_BLOCK_BYTES = 2**20
# and inflated at most this many bytes at a time (the cut does not depend on it).
GZIP_OUT_BYTES = 2**20
LINE_BREAK = b"\n"


class TransformError(ModelshipError):
    """The input, the output or the shard cannot be used as asked: says which and why."""

    error_type = "transform_error"
    exit_code = 2


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.index:05d}-of-{self.count:05d}"


WHOLE = Shard(0, 1)


def parse_shard(text: str) -> Shard:
    """`I/N`: the I-th (from 0) of N shards."""
    index, _, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = Shard(-1, 0)
    if not 0 <= shard.index < shard.count <= 10_000:
        raise TransformError(
            f"--shard {text!r}: expected I/N with 0 <= I < N <= 10000, e.g. 0/4 "
            "(on Kubernetes: $JOB_COMPLETION_INDEX/N)"
        )
    return shard


@dataclass(frozen=True)
class InputFile:
    uri: str
    key: str
    size: int
    tag: str
    gzip: bool

    def describe(self) -> dict[str, Any]:
        return {"uri": self.uri, "bytes": self.size, "tag": self.tag, "gzip": self.gzip}


@dataclass(frozen=True)
class Input:
    uri: str
    backend: store.Backend
    files: list[InputFile]


def _store_call(uri: str, call: Callable[[], Any]) -> Any:
    """Run a storage call, turning the clients' many errors into one that names the URI."""
    try:
        return call()
    except store.MissingObjectError:
        raise TransformError(f"{uri} does not exist") from None
    except store.DeniedError:
        raise TransformError(f"{uri} does not exist or this identity may not read it") from None
    except ModelshipError:
        raise
    except OSError as exc:
        raise TransformError(f"{uri}: {exc.strerror or exc}") from None
    except Exception as exc:  # client libraries raise many types
        raise TransformError(f"{uri}: {type(exc).__name__}: {exc}") from exc


def open_input(uri: str) -> Input:
    """The CSV file(s) at `uri`: one object, or every .csv / .csv.gz under a prefix, by name."""
    location = store.parse(uri)
    if location.scheme == "file":
        path = Path(location.bucket)
        root = path if path.is_dir() else path.parent
        backend: store.Backend = store.LocalBackend(root)
        if path.is_dir():
            keys = [k for k in backend.keys("") if k.endswith(CSV_SUFFIXES)]
            names = [(str(root / k), k) for k in keys]
        elif path.is_file():
            names = [(str(path), path.name)]
        else:
            raise TransformError(f"input CSV {uri} does not exist or is not a file")
    else:
        backend = store.backend(location)
        key = location.prefix
        names = []
        if key and not key.endswith("/") and _store_call(uri, lambda: backend.exists(key)):
            names = [(uri, key)]
        else:
            prefix = key.rstrip("/") + "/" if key else ""
            names = [
                (location.uri_of(k), k)
                for k in _store_call(uri, lambda: backend.keys(prefix))
                if k.endswith(CSV_SUFFIXES)
            ]
    if not names:
        raise TransformError(
            f"no input at {uri}: expected a CSV file, or a prefix holding .csv or .csv.gz files"
        )
    files = []
    for file_uri, key in names:
        info: store.ObjectInfo = _store_call(file_uri, functools.partial(backend.info, key))
        if info.size == 0:
            raise TransformError(f"{file_uri} is empty: expected a header row and data rows")
        files.append(InputFile(file_uri, key, info.size, info.tag, key.endswith(".gz")))
    return Input(uri, backend, files)


@dataclass(frozen=True)
class Segment:
    """The part of one input file that one shard scores: rows starting in [start, end)."""

    file_index: int
    file: InputFile
    start: int
    end: int


def segments(files: Sequence[InputFile], shard: Shard) -> list[Segment]:
    """Shard I's byte range of all files end to end, cut at the file boundaries."""
    total = sum(f.size for f in files)
    low, high = total * shard.index // shard.count, total * (shard.index + 1) // shard.count
    found: list[Segment] = []
    offset = 0
    for number, item in enumerate(files):
        start, end = max(low - offset, 0), min(high - offset, item.size)
        if start < end:
            found.append(Segment(number, item, start, end))
        offset += item.size
    return found


@dataclass
class SegmentLines:
    """A segment read: its header line, its data lines (a stream) and what was read."""

    header: bytes
    lines: Iterator[bytes]
    digest: Any = field(default_factory=hashlib.sha256)
    """sha256 of the stored bytes [start, end): the ranges of all shards tile each file."""
    first_line_byte: int | None = None


def _refuse_quote(where: str, offset: int) -> TransformError:
    return TransformError(
        f"{where}: the line starting at byte {offset} has an unbalanced quote, i.e. a quoted "
        "field holding a line break; byte-range shards cannot split such a file safely: "
        "score that file unsharded (without --shard)"
    )


class _QuoteCheck:
    """Refuses a line with an odd number of quotes, across the blocks a stream comes in.

    A well-formed CSV line whose quoted fields all close on it has an even count (`""` inside a
    quoted field counts two); an odd count means a field goes on after the line break. Blocks
    without a quote cost one scan, so plain numeric files pay almost nothing."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._odd = False
        self._line_start = 0

    def feed(self, block: bytes, offset: int) -> None:
        if not self._odd and b'"' not in block:
            if LINE_BREAK in block:
                self._line_start = offset + block.rindex(LINE_BREAK) + 1
            return
        position = 0
        while (end := block.find(LINE_BREAK, position)) != -1:
            if (block.count(b'"', position, end) % 2 == 1) != self._odd:
                raise _refuse_quote(self.where, self._line_start)
            self._odd = False
            position = end + 1
            self._line_start = offset + position
        self._odd = (block.count(b'"', position) % 2 == 1) != self._odd

    def finish(self) -> None:
        if self._odd:
            raise _refuse_quote(self.where, self._line_start)


def read_segment(source: Input, segment: Segment, sharded: bool) -> SegmentLines:
    """The segment's header and its rows as a stream of blocks of whole lines."""
    read = _gzip_segment if segment.file.gzip else _plain_segment
    return read(source.backend, segment, sharded)


def _opened(backend: store.Backend, item: InputFile, start: int) -> IO[bytes]:
    stream: IO[bytes] = _store_call(item.uri, lambda: backend.open_read(item.key, start))
    return stream


def _plain_segment(backend: store.Backend, segment: Segment, sharded: bool) -> SegmentLines:
    item, start, end = segment.file, segment.start, segment.end
    with contextlib.closing(_opened(backend, item, 0)) as head:
        header = head.readline()
    if sharded:
        _QuoteCheck(item.uri).feed(_ended(header), 0)
    result = SegmentLines(header, iter(()))
    quotes = _QuoteCheck(item.uri) if sharded else None

    def blocks() -> Iterator[bytes]:
        with contextlib.closing(_opened(backend, item, max(start - 1, 0))) as stream:
            position = start
            if start == 0:
                stream.readline()  # the header is not a data row
                result.digest.update(header[:end])
                position = len(header)
            elif stream.read(1) != LINE_BREAK:  # a line that began before `start`: not ours
                skipped = stream.readline()
                result.digest.update(skipped[: end - start])
                position += len(skipped)
            if position < end:
                result.first_line_byte = position
            last = LINE_BREAK
            while position < end:
                block = stream.read(min(store.READ_BLOCK_BYTES, end - position))
                if not block:
                    break
                result.digest.update(block)
                if quotes is not None:
                    quotes.feed(block, position)
                position += len(block)
                last = block
                yield block
            if not last.endswith(LINE_BREAK):  # the last line starts in range: read it whole
                tail = stream.readline()  # (empty at the end of the file: then only "\n")
                tail = tail if tail.endswith(LINE_BREAK) else tail + LINE_BREAK
                if quotes is not None:
                    quotes.feed(tail, position)
                yield tail
            if quotes is not None:
                quotes.finish()

    result.lines = blocks()
    return result


def _gzip_segment(backend: store.Backend, segment: Segment, sharded: bool) -> SegmentLines:
    item, start, end = segment.file, segment.start, segment.end
    result = SegmentLines(b"", iter(()))
    chunks = _gzip_lines(backend, item, start, end, result.digest)
    owner, first = next(chunks, (0, b""))
    split = first.find(LINE_BREAK) + 1 or len(first)
    result.header, rest = first[:split], first[split:]
    if sharded:
        _QuoteCheck(item.uri).feed(_ended(result.header), 0)

    def lines() -> Iterator[bytes]:
        for at, block in itertools.chain([(owner, rest)], chunks):
            if at >= end:
                return
            if at >= start and block:
                if sharded:
                    check = _QuoteCheck(item.uri)
                    check.feed(block, at)
                    check.finish()
                if result.first_line_byte is None:
                    result.first_line_byte = at
                yield _ended(block)

    result.lines = lines()
    return result


def _gzip_lines(
    backend: store.Backend, item: InputFile, start: int, end: int, digest: Any
) -> Iterator[tuple[int, bytes]]:
    """Whole lines up to `end`, in runs that start in the same compressed block, each with that
    block's offset (the one shard it belongs to); the compressed bytes in [start, end) go
    into `digest` on the way. (Error offsets in a gzip file are those of the block.)"""
    with contextlib.closing(_opened(backend, item, 0)) as stream:
        inflate = _Inflate(item.uri)
        pending = b""
        pending_owner = 0
        offset = 0
        while block := stream.read(GZIP_BLOCK_BYTES):
            owner = offset
            offset += len(block)
            if owner >= end and not pending:
                return  # every line from here on starts in a later shard's range
            if owner < end and offset > start:
                digest.update(block[max(start - owner, 0) : end - owner])
            for out in inflate.pieces(block):
                first = out.find(LINE_BREAK)
                if first == -1:
                    if not pending:
                        pending_owner = owner
                    pending += out
                    continue
                last = out.rfind(LINE_BREAK)
                run_start = 0
                if pending:
                    yield pending_owner, pending + out[: first + 1]
                    run_start = first + 1
                if last + 1 > run_start:
                    yield owner, out[run_start : last + 1]
                pending = out[last + 1 :]
                pending_owner = owner
        if pending:
            yield pending_owner, pending


class _Inflate:
    """gzip decompression (concatenated members too) in pieces of at most GZIP_OUT_BYTES, so a
    highly compressed block never expands into memory whole."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._decompressor = zlib.decompressobj(wbits=31)

    def pieces(self, block: bytes) -> Iterator[bytes]:
        data = block
        full = False  # the last piece filled its limit: zlib may hold more output
        while data or full:
            try:
                out = self._decompressor.decompress(data, GZIP_OUT_BYTES)
            except zlib.error as exc:
                raise TransformError(f"{self._uri} is not a valid gzip file: {exc}") from None
            full = len(out) == GZIP_OUT_BYTES
            if self._decompressor.eof:  # the next member, if any, starts a new stream
                data = self._decompressor.unused_data
                self._decompressor = zlib.decompressobj(wbits=31)
                full = False
            else:
                data = self._decompressor.unconsumed_tail
            if out:
                yield out


class _LineStream(io.RawIOBase):
    """Lines (an iterator of bytes) read back as one binary stream, for the CSV reader."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            block = next(self._lines, None)
            if block is None:
                return 0
            self._left = memoryview(block)
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


def _peek_data(lines: Iterator[bytes]) -> tuple[bool, Iterator[bytes]]:
    """Whether any non-blank line comes, and the same lines still to read."""
    held: list[bytes] = []
    for line in lines:
        held.append(line)
        if line.strip():
            return True, itertools.chain(held, lines)
    return False, iter(held)


def _ended(line: bytes) -> bytes:
    return line if line.endswith(LINE_BREAK) or not line else line + LINE_BREAK


class RejectsWriter:
    """Rows left out under `--on-error skip`, as CSV: line, reason, the row as read."""

    HEADER = ("line", "problem", "row")

    def __init__(self, open_sink: Callable[[], IO[str]]) -> None:
        self._open_sink = open_sink
        self._writer: Any = None
        self.count = 0

    def __call__(self, line: int, cells: list[str], problems: Sequence[Problem]) -> None:
        if self._writer is None:
            self._writer = csv.writer(self._open_sink(), lineterminator="\n")
            self._writer.writerow(self.HEADER)
        text = io.StringIO()
        csv.writer(text, lineterminator="").writerow(cells)
        self._writer.writerow([line, "; ".join(p.describe() for p in problems), text.getvalue()])
        self.count += 1

    @property
    def opened(self) -> bool:
        return self._writer is not None


def _json_bytes(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class Output:
    uri: str
    backend: store.Backend
    location: store.Location

    def key(self, name: str) -> str:
        if self.location.scheme == "file":
            return name
        return self.location.key(name)

    def uri_of(self, name: str) -> str:
        return self.location.uri_of(self.key(name))

    @contextlib.contextmanager
    def text_writer(self, name: str) -> Iterator[IO[str]]:
        with (
            self.backend.writer(self.key(name)) as binary,
            io.TextIOWrapper(
                io.BufferedWriter(_Unclosed(binary), store.READ_BLOCK_BYTES),
                encoding="utf-8",
                newline="",
            ) as text,
        ):
            yield text

    def put(self, name: str, data: bytes) -> None:
        with self.backend.writer(self.key(name)) as sink:
            sink.write(data)

    def read(self, name: str) -> bytes:
        data: bytes = _store_call(self.uri_of(name), lambda: self.backend.read(self.key(name)))
        return data


class _Unclosed(io.RawIOBase):
    """Hands writes to a stream without closing it (its owner publishes it on exit)."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._target.write(bytes(data))
        return len(data)


def open_output(uri: str) -> Output:
    location = store.parse(uri)
    if location.scheme == "file":
        root = Path(location.bucket)
        if root.is_file():
            raise TransformError(f"output {uri} is a file: give a directory (a prefix) for parts")
        return Output(uri, store.LocalBackend(root), location)
    return Output(uri, store.backend(location), location)


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
        has_data, lines = _peek_data(read.lines)
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
    output.put(f"{SHARDS_DIR}/{shard.name}.json", _json_bytes(manifest))
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
        stream = io.BufferedReader(_LineStream(itertools.chain([_ended(read.header)], lines)))
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
    for key in _store_call(output.uri, lambda: output.backend.keys(prefix)):
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
    output.put(MANIFEST, _json_bytes(manifest))
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


def whole_file(source: Input) -> IO[bytes]:
    """The one input file as a binary stream (decompressed), header first."""
    (segment,) = segments(source.files[:1], WHOLE)
    read = read_segment(source, segment, sharded=False)
    return io.BufferedReader(_LineStream(itertools.chain([_ended(read.header)], read.lines)))


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


@contextlib.contextmanager
def file_writer(uri: str) -> Iterator[IO[str]]:
    """One output CSV (a path or an object URI), published only when complete."""
    location = store.parse(uri)
    if location.scheme == "file":
        path = Path(location.bucket)
        output = Output(uri, store.LocalBackend(path.parent), location)
        name = path.name
    else:
        output = Output(uri, store.backend(location), location)
        name = ""
    with output.text_writer(name) as sink:
        yield sink


def try_merge(output: Output, shards: int) -> dict[str, Any] | None:
    """Merge if every shard is done (the last shard to finish writes `_manifest.json`)."""
    try:
        return merge(output, shards)
    except TransformError:
        return None
