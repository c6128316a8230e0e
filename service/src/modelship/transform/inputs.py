"""The batch transform's input: files or a prefix of them, plain or gzip, read as a stream and cut
into the byte ranges of a shard (see `modelship.transform`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from modelship.errors import ModelshipError
from modelship.model import store
from modelship.transform.base import (
    CSV_SUFFIXES,
    GZIP_BLOCK_BYTES,
    GZIP_OUT_BYTES,
    LINE_BREAK,
    WHOLE,
    Shard,
    TransformError,
)


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


def store_call(uri: str, call: Callable[[], Any]) -> Any:
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
        if key and not key.endswith("/") and store_call(uri, lambda: backend.exists(key)):
            names = [(uri, key)]
        else:
            prefix = key.rstrip("/") + "/" if key else ""
            names = [
                (location.uri_of(k), k)
                for k in store_call(uri, lambda: backend.keys(prefix))
                if k.endswith(CSV_SUFFIXES)
            ]
    if not names:
        raise TransformError(
            f"no input at {uri}: expected a CSV file, or a prefix holding .csv or .csv.gz files"
        )
    files = []
    for file_uri, key in names:
        info: store.ObjectInfo = store_call(file_uri, functools.partial(backend.info, key))
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
    stream: IO[bytes] = store_call(item.uri, lambda: backend.open_read(item.key, start))
    return stream


def _plain_segment(backend: store.Backend, segment: Segment, sharded: bool) -> SegmentLines:
    item, start, end = segment.file, segment.start, segment.end
    with contextlib.closing(_opened(backend, item, 0)) as head:
        header = head.readline()
    if sharded:
        _QuoteCheck(item.uri).feed(ended(header), 0)
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
        _QuoteCheck(item.uri).feed(ended(result.header), 0)

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
                yield ended(block)

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


class LineStream(io.RawIOBase):
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


def peek_data(lines: Iterator[bytes]) -> tuple[bool, Iterator[bytes]]:
    """Whether any non-blank line comes, and the same lines still to read."""
    held: list[bytes] = []
    for line in lines:
        held.append(line)
        if line.strip():
            return True, itertools.chain(held, lines)
    return False, iter(held)


def ended(line: bytes) -> bytes:
    return line if line.endswith(LINE_BREAK) or not line else line + LINE_BREAK


def whole_file(source: Input) -> IO[bytes]:
    """The one input file as a binary stream (decompressed), header first."""
    (segment,) = segments(source.files[:1], WHOLE)
    read = read_segment(source, segment, sharded=False)
    return io.BufferedReader(LineStream(itertools.chain([ended(read.header)], read.lines)))
