"""Optional API-key access control: off by default; when on, only probes and metrics stay open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelship.contracts.settings import load_settings
from modelship.errors import ModelshipError
from tests.service.cli.test_cli import assert_one_line_error, modelship
from tests.service.conftest import make_client

KEY = "s3cret-key-for-tests"
MODEL = "insurance-charges"


@pytest.fixture
def locked(regression_artifact: Path) -> Iterator[TestClient]:
    with make_client(regression_artifact, api_key=KEY) as client:
        yield client


def test_no_key_configured_means_open(client: TestClient) -> None:
    example = client.get("/model/examples/0").json()
    assert client.post("/predict", json=example).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/predict"),
        ("POST", "/predict/batch"),
        ("POST", "/predict/csv"),
        ("POST", "/score"),
        ("GET", "/model"),
        ("GET", f"/v2/models/{MODEL}"),
        ("POST", f"/v2/models/{MODEL}/infer"),
    ],
)
def test_prediction_routes_need_the_key(locked: TestClient, method: str, path: str) -> None:
    response = locked.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    message = error if path.startswith("/v2/") else error["message"]
    assert "needs an API key" in message
    assert "x-request-id" in response.headers


def test_wrong_key_is_refused(locked: TestClient) -> None:
    response = locked.get("/model", headers={"X-API-Key": KEY + "x"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the API key is not valid"
    assert locked.get("/model", headers={"Authorization": f"Basic {KEY}"}).status_code == 401


@pytest.mark.parametrize(
    "headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}], ids=["bearer", "x-api-key"]
)
def test_right_key_passes(locked: TestClient, headers: dict[str, str]) -> None:
    example = locked.get("/model/examples/0", headers=headers).json()
    assert locked.post("/predict", json=example, headers=headers).status_code == 200
    v2 = locked.get(f"/v2/models/{MODEL}", headers=headers)
    assert v2.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL}/ready",
        "/",
        "/ui/app.js",
    ],
)
def test_probes_metrics_and_page_stay_open(locked: TestClient, path: str) -> None:
    assert locked.get(path).status_code == 200


def test_key_from_a_mounted_secret_file(regression_artifact: Path, tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text(KEY + "\n")
    with make_client(regression_artifact, api_key_file=secret) as client:
        assert client.get("/model").status_code == 401
        assert client.get("/model", headers={"X-API-Key": KEY}).status_code == 200
        assert 'id="api-key"' in client.get("/").text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELSHIP_API_KEY_FILE": "missing"}, "cannot read it (No such file or directory)"),
        ({"MODELSHIP_API_KEY_FILE": "empty"}, "is empty"),
        ({"MODELSHIP_API_KEY": "  "}, "MODELSHIP_API_KEY is set but empty"),
        (
            {"MODELSHIP_API_KEY": KEY, "MODELSHIP_API_KEY_FILE": "empty"},
            "set only one of MODELSHIP_API_KEY or MODELSHIP_API_KEY_FILE",
        ),
    ],
)
def test_unusable_key_settings_stop_serve(
    regression_artifact: Path, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    """The rules live in Settings: `modelship serve` stops before any worker, naming the setting;
    the same settings built in process (the container's workers) refuse alike."""
    (tmp_path / "empty").write_text("\n")
    if "MODELSHIP_API_KEY_FILE" in env:
        env = {**env, "MODELSHIP_API_KEY_FILE": str(tmp_path / env["MODELSHIP_API_KEY_FILE"])}
    result = modelship("serve", "--artifact", str(regression_artifact), "--port", "1", env=env)
    assert_one_line_error(result, 2, message)
    assert "modelship: error: settings: " in result.stderr
    overrides = {name.removeprefix("MODELSHIP_").lower(): value for name, value in env.items()}
    with pytest.raises(ModelshipError, match=re.escape(message)):
        load_settings(**overrides)
