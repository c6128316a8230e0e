"""Google Cloud Storage by google-cloud-storage. Its errors are mapped to the store's in one place
(`_mapped`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

from modelship.model.store.base import (
    READ_BLOCK_BYTES,
    UPLOAD_PART_BYTES,
    DeniedError,
    ExistsError,
    MissingObjectError,
    ObjectInfo,
)


class GcsBackend:
    def __init__(self, bucket: str) -> None:
        from google.cloud import storage

        self.client: Any = storage.Client()
        self.bucket: Any = self.client.bucket(bucket)

    def read(self, key: str) -> bytes:
        with _mapped(key):
            data: bytes = self.bucket.blob(key).download_as_bytes()
        return data

    def exists(self, key: str) -> bool:
        try:
            with _mapped(key):
                return bool(self.bucket.blob(key).exists())
        except DeniedError:  # not known to exist; the conditional write decides
            return False

    def write_once(self, key: str, data: bytes) -> None:
        with _mapped(key):  # generation 0 = "only if no live object": refused atomically by GCS
            self.bucket.blob(key).upload_from_string(data, if_generation_match=0)

    def keys(self, prefix: str) -> list[str]:
        return sorted(blob.name for blob in self.client.list_blobs(self.bucket, prefix=prefix))

    def info(self, key: str) -> ObjectInfo:
        try:
            with _mapped(key):
                blob = self.bucket.get_blob(key)
        except MissingObjectError:
            blob = None
        if blob is None:
            raise MissingObjectError(key)
        return ObjectInfo(int(blob.size), str(blob.generation))

    def open_read(self, key: str, start: int) -> IO[bytes]:
        reader: IO[bytes] = self.bucket.blob(key).open("rb", chunk_size=READ_BLOCK_BYTES)
        reader.seek(start)
        return reader

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        # A resumable upload: GCS creates (or replaces) the object only when it is closed; on an
        # error it is never closed and the unfinished session expires.
        upload: IO[bytes] = self.bucket.blob(key).open(
            "wb", chunk_size=UPLOAD_PART_BYTES, ignore_flush=True
        )
        yield upload
        upload.close()


@contextlib.contextmanager
def _mapped(key: str) -> Iterator[None]:
    """Google Cloud Storage's answers about `key` as the store's errors; any other error passes
    unchanged."""
    from google.api_core.exceptions import Forbidden, NotFound, PreconditionFailed

    try:
        yield
    except NotFound:
        raise MissingObjectError(key) from None
    except Forbidden:
        raise DeniedError(key) from None
    except PreconditionFailed:
        raise ExistsError(key) from None
