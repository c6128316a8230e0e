"""Model versions in object storage (s3://, gs://) or a directory, addressed by URI.

Layout under a store root: `models/<name>/<sha256 of model.onnx>/{model.onnx, model-card.json}`.
The path holds the content hash, so a version can never change under a running service:
publishing refuses to write over an existing version, and fetching checks the hash.
Credentials come from the platform (the ECS task role, GKE Workload Identity, or the usual
environment), never from this code; `AWS_ENDPOINT_URL` / `STORAGE_EMULATOR_HOST` point the
clients at other S3- or GCS-compatible servers."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from modelship.contracts.card import ModelCard
from modelship.errors import ModelshipError
from modelship.model import artifact
from modelship.model.store.base import (
    SCHEMES,
    Backend,
    DeniedError,
    ExistsError,
    MissingObjectError,
    StoreError,
)
from modelship.model.store.gcs import GcsBackend
from modelship.model.store.local import LocalBackend
from modelship.model.store.s3 import S3Backend


@dataclass(frozen=True)
class Location:
    """A parsed store URI: where the backend is, and the key prefix inside it."""

    uri: str
    scheme: str
    bucket: str
    prefix: str

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def uri_of(self, key: str) -> str:
        if self.scheme == "file":
            return str(Path(self.bucket) / key)
        return f"{self.scheme}://{self.bucket}/{key}"


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("s3", "gs")


def is_store_uri(uri: str) -> bool:
    """A store root to publish into: s3://, gs:// or file:///DIR (a plain path is an artifact)."""
    return urlparse(uri).scheme in SCHEMES


def parse(uri: str) -> Location:
    parsed = urlparse(uri)
    scheme = parsed.scheme or "file"
    if scheme not in SCHEMES or (scheme != "file" and not parsed.netloc):
        raise StoreError(
            f"model URI {uri!r} is not supported: use s3://BUCKET/PATH, gs://BUCKET/PATH "
            "or a directory path"
        )
    if scheme == "file":
        if parsed.scheme and parsed.netloc:
            raise StoreError(f"model URI {uri!r}: a file URI has no host; use file:///ABSOLUTE/DIR")
        return Location(uri, "file", parsed.path if parsed.scheme else uri, "")
    return Location(uri, scheme, parsed.netloc, parsed.path.strip("/"))


def backend(location: Location) -> Backend:
    try:
        if location.scheme == "s3":
            return S3Backend(location.bucket)
        if location.scheme == "gs":
            return GcsBackend(location.bucket)
    except ImportError as exc:
        raise StoreError(
            f"{location.uri}: the storage client is not installed ({exc.name}); "
            "install modelship[cloud]"
        ) from None
    return LocalBackend(Path(location.bucket))


def _claims_sha256(name: str) -> bool:
    """A version directory's name is the SHA-256 of its model: 64 characters claim a hash,
    which must then match (anything else is not a content-addressed version)."""
    return len(name) == 64


def _report_files(card: ModelCard) -> dict[str, str]:
    """The files beside the model: the training report's and the explanation's (relative path
    -> SHA-256), checked to stay in the version."""
    files = dict(card.report.files) if card.report is not None else {}
    if card.explanation is not None and card.explanation.file and card.explanation.sha256:
        files[card.explanation.file] = card.explanation.sha256
    for name in files:
        parts = PurePosixPath(name).parts
        if PurePosixPath(name).is_absolute() or ".." in parts or not parts:
            raise StoreError(f"the model card lists a report file outside its version: {name!r}")
    return files


def _check_report(version_uri: str, card: ModelCard, report: dict[str, bytes]) -> None:
    for name, expected in _report_files(card).items():
        if hashlib.sha256(report[name]).hexdigest() != expected:
            raise StoreError(
                f"model {version_uri}: checksum mismatch: {name} is not the file its card describes"
            )


def write_or_same(store: Backend, key: str, data: bytes) -> None:
    """A create-only write that also succeeds when `key` already holds exactly `data`.

    The SDKs retry a write whose answer was lost; if the first attempt did land, the retry fails
    its precondition (`ExistsError`) although the object is this very upload. An existing
    object with other bytes is a real conflict and raises `ExistsError`."""
    try:
        store.write_once(key, data)
    except ExistsError:
        if store.read(key) != data:
            raise


def version_key(location: Location, card: ModelCard) -> str:
    return location.key("models", card.name, card.artifact.onnx_sha256)


def publish(directory: Path, root_uri: str) -> str:
    """Upload a local artifact as a new, immutable version; returns the version's URI."""
    loaded = artifact.load(directory)
    location = parse(root_uri)
    store = backend(location)
    prefix = version_key(location, loaded.card)
    uri = location.uri_of(prefix) + "/"
    card_key = f"{prefix}/{artifact.CARD_FILE}"
    with store_errors(location, "write", uri):
        if store.exists(card_key):
            raise ExistsError(card_key)
        # The model and its report first, the card last: a version with a card is complete.
        # A version an earlier attempt left without its card (a lost answer, a crash) is
        # completed: its files are content-addressed, so the same bytes are the same version.
        write_or_same(store, f"{prefix}/{loaded.card.artifact.onnx_file}", loaded.onnx_bytes)
        for name in _report_files(loaded.card):
            write_or_same(store, f"{prefix}/{name}", (directory / name).read_bytes())
        write_or_same(store, card_key, (directory / artifact.CARD_FILE).read_bytes())
    return uri


def fetch(version_uri: str, cache: Path) -> artifact.Artifact:
    """Download a version into `cache`, verify it and return it loaded (read and hashed once).

    The hash in the URI, the hash in the card and the hash of the downloaded model must all
    agree; anything else is a start-up error naming the URI.
    """
    location = parse(version_uri)
    if location.scheme == "file":
        path = Path(location.bucket)
        named = path.name
        try:
            loaded = artifact.load(path)
        except ModelshipError as exc:
            raise StoreError(f"model {version_uri}: {exc}") from None
        if _claims_sha256(named) and named != loaded.card.artifact.onnx_sha256:
            raise StoreError(
                f"model {version_uri}: checksum mismatch: the directory says {named[:12]}…, "
                f"model.onnx has sha256 {loaded.card.artifact.onnx_sha256[:12]}…"
            )
        return loaded
    named = location.prefix.rstrip("/").rsplit("/", 1)[-1]
    if _claims_sha256(named) and artifact.exists(cache / named):
        return artifact.load(cache / named)  # fetched before (another worker, a restart)
    store = backend(location)

    def read(name: str) -> bytes:
        with store_errors(location, "read", version_uri, model=version_uri):
            return store.read(location.key(name))

    card_bytes = read(artifact.CARD_FILE)
    try:
        card = ModelCard.model_validate_json(card_bytes)
    except ValueError as exc:
        raise StoreError(f"model {version_uri}: the model card is unreadable: {exc}") from None
    onnx_bytes = read(card.artifact.onnx_file)
    actual = hashlib.sha256(onnx_bytes).hexdigest()
    if actual != card.artifact.onnx_sha256 or (_claims_sha256(named) and named != actual):
        raise StoreError(
            f"model {version_uri}: checksum mismatch: model.onnx has sha256 {actual[:12]}…, "
            f"its card says {card.artifact.onnx_sha256[:12]}…, the URI says {named[:12]}…"
        )
    # The model is checked first: a tampered model is named as such, not as a missing plot.
    report = {name: read(name) for name in _report_files(card)}
    _check_report(version_uri, card, report)
    target = cache / actual
    staging = cache / f".{actual}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / card.artifact.onnx_file).write_bytes(onnx_bytes)
    for name, content in report.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(content)
    (staging / artifact.CARD_FILE).write_bytes(card_bytes)
    if not target.exists():
        staging.rename(target)
    else:
        shutil.rmtree(staging)
    return artifact.load(target)


def versions(root_uri: str) -> list[tuple[str, ModelCard]]:
    """Every published version under a store root (or under one model's prefix), newest first."""
    location = parse(root_uri)
    store = backend(location)
    within = location.bucket if location.scheme == "file" else location.prefix
    base = location.key("models") if "/models" not in f"/{within}" else location.key()
    found: list[tuple[str, ModelCard]] = []
    with store_errors(location, "list", root_uri):
        for key in store.keys(base + "/" if base else ""):
            if key.endswith("/" + artifact.CARD_FILE):
                card = ModelCard.model_validate_json(store.read(key))
                found.append((location.uri_of(key.rsplit("/", 1)[0]) + "/", card))
    return sorted(found, key=lambda item: item[1].created_at, reverse=True)


def read_object(uri: str) -> bytes:
    """One object's bytes (a training CSV in a bucket, say)."""
    location = parse(uri)
    with store_errors(location, "read", uri):
        if location.scheme == "file":
            return Path(location.bucket).read_bytes()
        return backend(location).read(location.prefix)


@contextlib.contextmanager
def store_errors(
    location: Location, action: str, uri: str, model: str | None = None
) -> Iterator[None]:
    """The one place where backend errors (S3, GCS, the filesystem, the client libraries)
    become a `StoreError` naming the URI and the cause; `model` prefixes the version's URI."""
    about = f"model {model}: " if model else ""
    try:
        yield
    except StoreError:
        raise
    except ExistsError:
        raise StoreError(
            f"{uri} already exists: a published version is never overwritten"
        ) from None
    except MissingObjectError as exc:
        raise StoreError(f"{about}{location.uri_of(str(exc))} does not exist") from None
    except DeniedError as exc:
        raise StoreError(
            f"{about}{location.uri_of(str(exc))} does not exist or this identity may not read "
            "it (access denied)"
        ) from None
    except OSError as exc:
        raise StoreError(f"{about}cannot {action} {uri}: {exc.strerror or exc}") from None
    except Exception as exc:  # client libraries raise many types; name the URI and the cause
        raise StoreError(f"{about}cannot {action} {uri}: {type(exc).__name__}: {exc}") from exc
