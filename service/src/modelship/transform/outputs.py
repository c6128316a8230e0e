"""The batch transform's output: part files, rejects and manifests under a prefix, or one CSV."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelship.errors import Problem
from modelship.model import store
from modelship.transform.base import TransformError
from modelship.transform.inputs import store_call


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


def json_bytes(value: object) -> bytes:
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
        data: bytes = store_call(self.uri_of(name), lambda: self.backend.read(self.key(name)))
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
