"""What every store backend shares: the object interface and the three errors a backend raises
(missing, exists, denied), which `model_versions.store_errors` turns into one `StoreError`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import IO, Protocol

from modelship.errors import ModelshipError

SCHEMES = ("s3", "gs", "file")


class StoreError(ModelshipError):
    """A model URI that cannot be read or written: says which URI and why."""

    error_type = "store_error"
    status_code = 500
    exit_code = 2


# Streamed uploads go out in parts of this size (S3's minimum part is 5 MiB), so writing a
# file of any size holds one part in memory.
UPLOAD_PART_BYTES = 8 * 2**20


READ_BLOCK_BYTES = 2**20


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one stored object's content without reading it."""

    size: int
    tag: str
    """S3 ETag, GCS generation, or a local file's modification time in nanoseconds."""


class Backend(Protocol):
    def read(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def write_once(self, key: str, data: bytes) -> None: ...
    def keys(self, prefix: str) -> list[str]: ...
    def info(self, key: str) -> ObjectInfo: ...
    def open_read(self, key: str, start: int) -> IO[bytes]:
        """A stream of the object's bytes from offset `start` to its end."""
        ...

    def writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Streams an object that appears (or replaces the old one) only when the block exits
        without an error: a reader never sees it half-written."""
        ...


class MissingObjectError(Exception):
    pass


class ExistsError(Exception):
    pass


class DeniedError(Exception):
    """Access denied to a key; for S3 without list permission also what a missing key looks like."""
