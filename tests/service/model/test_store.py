"""Model versions in object storage, against real S3 and GCS protocol servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelship.model import artifact, store
from modelship.model.store import StoreError
from tests.service.cli.test_cli import assert_one_line_error, modelship
from tests.service.object_stores import BUCKET, gcs_server, lose_first_answer, s3_server
from tests.service.server import running_server


@pytest.fixture(params=["s3", "gs"], scope="module")
def object_store(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    """(store root URI, environment) for each protocol; the environment is also set here."""
    server = s3_server() if request.param == "s3" else gcs_server()
    with server as env:
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            yield f"{request.param}://{BUCKET}", env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def test_publish_fetch_list(
    object_store: tuple[str, dict[str, str]], regression_artifact: Path, tmp_path: Path
) -> None:
    root, _ = object_store
    card = artifact.load(regression_artifact).card
    uri = store.publish(regression_artifact, f"{root}/team-a")
    assert uri == f"{root}/team-a/models/{card.name}/{card.artifact.onnx_sha256}/"

    fetched = store.fetch(uri, tmp_path / "cache")
    assert fetched.card == card
    assert artifact.load(fetched.path).card == card
    assert card.report is not None  # the training report travels with the version, verified
    for name, sha256 in card.report.files.items():
        assert hashlib.sha256((fetched.path / name).read_bytes()).hexdigest() == sha256

    with pytest.raises(
        StoreError, match="already exists: a published version is never overwritten"
    ):
        store.publish(regression_artifact, f"{root}/team-a")

    listed = store.versions(f"{root}/team-a")
    assert [(u, c.artifact.onnx_sha256) for u, c in listed] == [(uri, card.artifact.onnx_sha256)]
    assert store.versions(f"{root}/team-a/models/{card.name}") == listed


def test_publish_survives_a_lost_answer(
    object_store: tuple[str, dict[str, str]],
    regression_artifact: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first write lands but its answer is lost: the SDK's own retry finds the object
    there (412) with the very bytes it sent, which is success, not "already exists"."""
    root, _ = object_store
    backend = store.backend(store.parse(root))
    monkeypatch.setattr(store.model_versions, "backend", lambda _: backend)
    with lose_first_answer(backend) as lost:
        uri = store.publish(regression_artifact, f"{root}/lost-answer")
    assert lost  # the fault was injected, and the SDK retried it
    assert store.fetch(uri, tmp_path / "cache").card == artifact.load(regression_artifact).card


def test_a_version_left_without_its_card_is_completed_but_never_changed(
    object_store: tuple[str, dict[str, str]], regression_artifact: Path, tmp_path: Path
) -> None:
    """An earlier publish stopped after the model (a lost answer, a crash): publishing again
    completes the version, since the model there is the same bytes. Other bytes under the
    version's key are a conflict, refused with the version's URI."""
    root, _ = object_store
    loaded = artifact.load(regression_artifact)
    for name, model in (("partial", loaded.onnx_bytes), ("conflict", b"not this model")):
        location = store.parse(f"{root}/{name}")
        prefix = store.version_key(location, loaded.card)
        store.backend(location).write_once(f"{prefix}/{loaded.card.artifact.onnx_file}", model)
    uri = store.publish(regression_artifact, f"{root}/partial")
    assert store.fetch(uri, tmp_path / "cache").card == loaded.card
    with pytest.raises(StoreError, match=r"conflict/models/.* already exists"):
        store.publish(regression_artifact, f"{root}/conflict")


def test_checksum_mismatch_and_missing_objects_are_refused(
    object_store: tuple[str, dict[str, str]], regression_artifact: Path, tmp_path: Path
) -> None:
    root, _ = object_store
    card_bytes = (regression_artifact / artifact.CARD_FILE).read_bytes()
    sha = artifact.load(regression_artifact).card.artifact.onnx_sha256
    location = store.parse(f"{root}/tampered")
    backend = store.backend(location)
    prefix = location.key("models", "insurance-charges", sha)
    backend.write_once(f"{prefix}/model.onnx", b"not the model the card describes")
    backend.write_once(f"{prefix}/{artifact.CARD_FILE}", card_bytes)
    tampered = location.uri_of(prefix) + "/"
    with pytest.raises(StoreError, match=f"model {tampered}: checksum mismatch"):
        store.fetch(tampered, tmp_path / "cache")
    assert not (tmp_path / "cache" / sha).exists()

    missing = f"{root}/models/insurance-charges/{'0' * 64}/"
    with pytest.raises(StoreError, match=r"model-card\.json does not exist"):
        store.fetch(missing, tmp_path / "cache")


def test_bad_uris_are_explained() -> None:
    with pytest.raises(StoreError, match="use s3://BUCKET/PATH, gs://BUCKET/PATH or a directory"):
        store.parse("ftp://host/model")
    with pytest.raises(StoreError, match="is not supported"):
        store.parse("s3:///no-bucket")


@pytest.mark.slow
def test_train_in_the_cloud_list_and_serve_over_http(
    object_store: tuple[str, dict[str, str]], insurance_csv: Path, tmp_path: Path
) -> None:
    """Retrain → list → deploy by URI, as the cloud training jobs and services do."""
    root, env = object_store
    location = store.parse(f"{root}/data/insurance.csv")
    store.backend(location).write_once(location.prefix, insurance_csv.read_bytes())

    trained = modelship(
        "train",
        "--data",
        f"{root}/data/insurance.csv",
        "--target",
        "charges",
        "--model",
        "ridge",
        "--output",
        root,
        "--quiet",
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    published = trained.stdout.strip().splitlines()[-1]
    assert published.startswith(f"published: {root}/models/insurance-charges/")
    uri = published.removeprefix("published: ")

    listing = modelship("models", "list", root, env=env)
    assert listing.returncode == 0, listing.stderr
    assert uri in listing.stdout
    assert "ridge" in listing.stdout

    with running_server("--model-uri", uri, cwd=tmp_path, env=env) as server:
        card = httpx.get(f"{server.url}/model").json()
        assert uri.rstrip("/").endswith(card["artifact"]["onnx_sha256"])
        example = httpx.get(f"{server.url}/model/examples/0").json()
        assert httpx.post(f"{server.url}/predict", json=example).status_code == 200

    gone = f"{root}/models/insurance-charges/{'f' * 64}/"
    assert_one_line_error(
        modelship("serve", "--model-uri", gone, cwd=tmp_path, env=env), 2, f"model {gone}"
    )


def test_a_directory_store_publishes_lists_and_verifies(
    regression_artifact: Path, tmp_path: Path
) -> None:
    """The local stack's store: a host directory, published into with file:///DIR."""
    root = tmp_path / "model-store"
    card = artifact.load(regression_artifact).card
    uri = store.publish(regression_artifact, f"file://{root}")
    assert uri == f"{root}/models/{card.name}/{card.artifact.onnx_sha256}/"
    assert store.fetch(uri, tmp_path / "unused").path == Path(uri)
    assert [u for u, _ in store.versions(str(root))] == [uri]
    assert [u for u, _ in store.versions(f"{root}/models/{card.name}")] == [uri]
    with pytest.raises(StoreError, match="never overwritten"):
        store.publish(regression_artifact, f"file://{root}")

    renamed = root / "models" / card.name / ("0" * 64)
    Path(uri).rename(renamed)
    with pytest.raises(StoreError, match=f"model {renamed}: checksum mismatch"):
        store.fetch(str(renamed), tmp_path / "unused")
    with pytest.raises(StoreError, match="a file URI has no host"):
        store.parse("file://host/dir")


def test_s3_access_denied_reads_as_missing_or_forbidden_not_a_crash(
    regression_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a narrow IAM policy (no s3:ListBucket on the key), S3 answers 403 for a missing key.

    botocore's Stubber plays S3's answers: the service's fetch names the URI; publishing treats
    "denied" as "not known to exist" and relies on the conditional write.
    """
    from botocore.stub import Stubber

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    uri = f"s3://bucket/models/insurance-charges/{'a' * 64}/"
    backend = store.S3Backend("bucket")
    with Stubber(backend.client) as stub:
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        stub.add_client_error("head_object", "403", "Forbidden", 403)
        monkeypatch.setattr(store.model_versions, "backend", lambda location: backend)
        with pytest.raises(StoreError) as caught:
            store.fetch(uri, tmp_path / "cache")
        assert str(caught.value) == (
            f"model {uri}: {uri}model-card.json does not exist or this identity may not read "
            "it (access denied)"
        )
        assert backend.exists("models/x/model-card.json") is False
        stub.assert_no_pending_responses()
