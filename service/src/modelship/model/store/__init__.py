"""Model versions in object storage (s3://, gs://) or a directory, addressed by URI.

Layout under a store root: `models/<name>/<sha256 of model.onnx>/{model.onnx, model-card.json}`.
The path holds the content hash, so a version can never change under a running service:
publishing refuses to write over an existing version, and fetching checks the hash.
Credentials come from the platform (the ECS task role, GKE Workload Identity, or the usual
environment), never from this code; `AWS_ENDPOINT_URL` / `STORAGE_EMULATOR_HOST` point the
clients at other S3- or GCS-compatible servers.

One module per backend (local, s3, gcs), each mapping its client's errors once; `model_versions`
publishes, lists and fetches model versions on any of them."""

from modelship.model.store.base import (
    READ_BLOCK_BYTES,
    SCHEMES,
    UPLOAD_PART_BYTES,
    Backend,
    DeniedError,
    ExistsError,
    MissingObjectError,
    ObjectInfo,
    StoreError,
)
from modelship.model.store.gcs import GcsBackend
from modelship.model.store.local import LocalBackend
from modelship.model.store.model_versions import (
    Location,
    backend,
    fetch,
    is_remote,
    is_store_uri,
    parse,
    publish,
    read_object,
    store_errors,
    version_key,
    versions,
)
from modelship.model.store.s3 import S3Backend

__all__ = [
    "READ_BLOCK_BYTES",
    "SCHEMES",
    "UPLOAD_PART_BYTES",
    "Backend",
    "DeniedError",
    "ExistsError",
    "GcsBackend",
    "LocalBackend",
    "Location",
    "MissingObjectError",
    "ObjectInfo",
    "S3Backend",
    "StoreError",
    "backend",
    "fetch",
    "is_remote",
    "is_store_uri",
    "parse",
    "publish",
    "read_object",
    "store_errors",
    "version_key",
    "versions",
]
