"""S3 by boto3. Its errors are mapped to the store's in one place (`_mapped`)."""

from __future__ import annotations

import contextlib
import io
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


class S3Backend:
    """S3 by boto3. Without `s3:ListBucket` on a key's prefix, S3 answers 403 (not 404) for a key
    that does not exist; both are handled, so a narrow IAM policy still gets clear errors."""

    def __init__(self, bucket: str) -> None:
        import boto3

        self.bucket = bucket
        self.client: Any = boto3.client("s3")

    def read(self, key: str) -> bytes:
        with _mapped(key):
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        try:
            with _mapped(key):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except (MissingObjectError, DeniedError):
            # Denied: unknown, so "not known to exist"; the conditional write that follows
            # still refuses to replace an object that does exist.
            return False
        return True

    def write_once(self, key: str, data: bytes) -> None:
        with _mapped(key):  # S3 conditional write: refused if the key exists, atomically
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def info(self, key: str) -> ObjectInfo:
        with _mapped(key):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(int(head["ContentLength"]), str(head["ETag"]).strip('"'))

    def open_read(self, key: str, start: int) -> IO[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-")
        return io.BufferedReader(_ReadAdapter(body["Body"]), READ_BLOCK_BYTES)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        upload = _S3Upload(self.client, self.bucket, key)
        try:
            yield upload  # type: ignore[misc]
        except BaseException:
            upload.abort()
            raise
        upload.complete()


class _ReadAdapter(io.RawIOBase):
    """Any object with `read(n)` as a raw stream, so `io.BufferedReader` can read lines."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


class _S3Upload(io.RawIOBase):
    """A multipart upload: parts of UPLOAD_PART_BYTES go out as they fill, and the object
    exists only once `complete` is called (S3 makes it visible atomically)."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= UPLOAD_PART_BYTES:
            self._send_part()
        return len(data)

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key
            )["UploadId"]
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer.clear()

    def complete(self) -> None:
        if self._upload_id is None:  # small: one plain put
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
            return
        if self._buffer:
            self._send_part()
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            with contextlib.suppress(Exception):  # the bucket's lifecycle rule cleans up too
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )


_S3_MISSING = ("404", "NoSuchKey", "NotFound")
_S3_DENIED = ("403", "AccessDenied", "Forbidden")
_S3_EXISTS = ("PreconditionFailed", "412")


@contextlib.contextmanager
def _mapped(key: str) -> Iterator[None]:
    """S3's answers about `key` as the store's errors; any other error passes unchanged."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _S3_MISSING:
            raise MissingObjectError(key) from None
        if code in _S3_DENIED:
            raise DeniedError(key) from None
        if code in _S3_EXISTS:
            raise ExistsError(key) from None
        raise
