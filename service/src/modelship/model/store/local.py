"""A directory as a store (`file:///DIR` or a plain path)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from modelship.model.store.base import ExistsError, MissingObjectError, ObjectInfo


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str) -> bytes:
        with _mapped(key):
            return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def write_once(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with _mapped(key), path.open("xb") as handle:  # "x": fails if the file exists
            handle.write(data)

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def info(self, key: str) -> ObjectInfo:
        with _mapped(key):
            stat = (self.root / key).stat()
        return ObjectInfo(stat.st_size, str(stat.st_mtime_ns))

    def open_read(self, key: str, start: int) -> IO[bytes]:
        with _mapped(key):
            handle = (self.root / key).open("rb")
        handle.seek(start)
        return handle

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with staging.open("wb") as handle:
                yield handle
            staging.replace(path)  # atomic on one file system
        finally:
            staging.unlink(missing_ok=True)


@contextlib.contextmanager
def _mapped(key: str) -> Iterator[None]:
    """The file system's answers about `key` as the store's errors; any other passes unchanged."""
    try:
        yield
    except FileNotFoundError:
        raise MissingObjectError(key) from None
    except FileExistsError:
        raise ExistsError(key) from None
