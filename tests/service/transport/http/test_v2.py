"""Open Inference Protocol (KServe V2): driven by Triton's official HTTP client, plus edge cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from modelship.contracts.settings import Settings
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.transport.http.app import create_app
from tests.service.live import serve_in_thread

MODEL = "insurance-charges"


@pytest.fixture(scope="module")
def triton_client(regression_predictor: Predictor) -> Iterator[triton.InferenceServerClient]:
    with serve_in_thread(
        create_app(build_serving(Settings.model_validate({}), regression_predictor))
    ) as url:
        client = triton.InferenceServerClient(url)
        yield client
        client.close()


def _input(name: str, values: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def _inputs(binary: bool) -> list[triton.InferInput]:
    return [
        _input("age", np.array([30, 52], dtype=np.float32), "FP32", binary),
        _input("sex", np.array(["male", "female"], dtype=object), "BYTES", binary),
        _input("bmi", np.array([[25.0], [31.5]], dtype=np.float64), "FP64", binary),
        _input("children", np.array([0, 2], dtype=np.int64), "INT64", binary),
        _input("smoker", np.array(["no", "yes"], dtype=object), "BYTES", binary),
        _input("region", np.array(["northeast", "mars"], dtype=object), "BYTES", binary),
    ]


def _native(predictor: Predictor) -> np.ndarray:
    rows = [
        {
            "age": 30,
            "sex": "male",
            "bmi": 25.0,
            "children": 0,
            "smoker": "no",
            "region": "northeast",
        },
        {"age": 52, "sex": "female", "bmi": 31.5, "children": 2, "smoker": "yes", "region": "mars"},
    ]
    result = predictor.predict(RecordsCodec(predictor.schema).decode(rows))
    assert result.values is not None
    return result.values


def test_health_and_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert triton_client.get_server_metadata()["name"] == "modelship"


def test_model_metadata_lists_every_feature(
    triton_client: triton.InferenceServerClient, regression_predictor: Predictor
) -> None:
    metadata = triton_client.get_model_metadata(MODEL)
    version = regression_predictor.card.version
    assert metadata["versions"] == [version]
    # Numbers are taken in float64, as the model scales them (test_double_inputs.py).
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        "age": "FP64",
        "sex": "BYTES",
        "bmi": "FP64",
        "children": "FP64",
        "smoker": "BYTES",
        "region": "BYTES",
    }
    assert metadata["outputs"] == [
        {"name": "predicted_charges", "datatype": "FP32", "shape": [-1]},
        # Sent only when asked for by name (test_explain.py).
        {"name": "explanation_contributions", "datatype": "FP64", "shape": [-1, -1, -1]},
        {"name": "explanation_base", "datatype": "FP64", "shape": [-1]},
    ]
    assert triton_client.get_model_metadata(MODEL, version)["name"] == MODEL


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary-extension"])
def test_infer_matches_native_route(
    triton_client: triton.InferenceServerClient, regression_predictor: Predictor, binary: bool
) -> None:
    result = triton_client.infer(MODEL, _inputs(binary), request_id="req-7")
    response = result.get_response()
    assert response["id"] == "req-7"
    assert response["model_version"] == regression_predictor.card.version
    assert "region: unseen category 'mars'" in response["parameters"]["warnings"]
    np.testing.assert_allclose(result.as_numpy("predicted_charges"), _native(regression_predictor))


def test_infer_with_requested_output_and_version(
    triton_client: triton.InferenceServerClient, regression_predictor: Predictor
) -> None:
    version = regression_predictor.card.version
    wanted = [triton.InferRequestedOutput("predicted_charges", binary_data=False)]
    result = triton_client.infer(MODEL, _inputs(False), outputs=wanted, model_version=version)
    assert result.as_numpy("predicted_charges").shape == (2,)


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (lambda c: c.get_model_metadata("nope"), 404, "unknown model 'nope'"),
        (lambda c: c.get_model_metadata(MODEL, "v0"), 404, "has no version 'v0'"),
        (lambda c: c.infer(MODEL, _inputs(False)[:2]), 400, "missing inputs 'bmi'"),
        (
            lambda c: c.infer(MODEL, _inputs(False), outputs=[triton.InferRequestedOutput("nope")]),
            400,
            "unknown output 'nope'",
        ),
    ],
)
def test_errors_reach_the_client(
    triton_client: triton.InferenceServerClient, call: object, status: int, message: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call(triton_client)  # type: ignore[operator]
    assert caught.value.status() == str(status)
    assert message in caught.value.message()


def _request(**changes: object) -> dict[str, object]:
    inputs = [
        {"name": "age", "shape": [1], "datatype": "INT64", "data": [33]},
        {"name": "sex", "shape": [1], "datatype": "BYTES", "data": ["female"]},
        {"name": "bmi", "shape": [1, 1], "datatype": "FP32", "data": [[22.5]]},
        {"name": "children", "shape": [1], "datatype": "FP64", "data": [1]},
        {"name": "smoker", "shape": [1], "datatype": "BYTES", "data": ["no"]},
        {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["southwest"]},
    ]
    return {"inputs": inputs, **changes}


def _bad(client: TestClient, body: object, status: int = 400) -> str:
    response = client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert list(error) == ["error"]
    assert isinstance(error["error"], str)
    return error["error"]


def test_hand_built_json_infer(client: TestClient) -> None:
    response = client.post(f"/v2/models/{MODEL}/infer", json=_request(id="x1"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "x1"
    assert body["outputs"][0]["shape"] == [1]
    # No warnings; the row's prediction id is the request id (X-Request-Id) and its index.
    rid = response.headers["x-request-id"]
    assert body["parameters"] == {"prediction_ids": [f"{rid}#0"]}


def test_validation_errors_in_protocol_form(client: TestClient) -> None:
    body = _request()
    body["inputs"][0]["shape"] = [2]  # type: ignore[index]
    assert "shape [2] holds 2 values but data has 1" in _bad(client, body)
    body = _request()
    body["inputs"][1]["datatype"] = "FP32"  # type: ignore[index]
    assert "categorical: its datatype must be BYTES" in _bad(client, body)
    body = _request()
    body["inputs"][0]["data"] = ["old"]  # type: ignore[index]
    assert "field 'age': expected a number" in _bad(client, body)
    body = _request()
    pet = {"name": "pet", "shape": [1], "datatype": "BYTES", "data": ["cat"]}
    body["inputs"].append(pet)  # type: ignore[attr-defined]
    assert "unexpected input 'pet'" in _bad(client, body)
    body = _request()
    body["inputs"][2]["shape"] = [1, 2]  # type: ignore[index]
    body["inputs"][2]["data"] = [1, 2]  # type: ignore[index]
    assert "use [N] or [N, 1]" in _bad(client, body)
    assert "invalid inference request" in _bad(client, {"inputs": "nope"})
    assert "invalid inference request" in _bad(client, {"id": 1})
    response = client.get("/v2/models/insurance-charges/nothing")
    assert response.status_code == 404
    assert "no V2 endpoint" in response.json()["error"]


def test_classifier_outputs_labels_and_probabilities(iris_client: TestClient) -> None:
    metadata = iris_client.get("/v2/models/iris-species").json()
    assert [o["name"] for o in metadata["outputs"]] == [
        "predicted_species",
        "probabilities",
        "explanation_contributions",
        "explanation_base",
    ]
    inputs = [
        {"name": i["name"], "shape": [2], "datatype": i["datatype"], "data": [5.1, 6.7]}
        for i in metadata["inputs"]
    ]
    body = iris_client.post("/v2/models/iris-species/infer", json={"inputs": inputs}).json()
    labels, probabilities = body["outputs"]
    assert labels["datatype"] == "BYTES"
    assert len(labels["data"]) == 2
    assert probabilities["shape"] == [2, 3]
    assert len(probabilities["data"]) == 6


def test_not_ready_model_answers_503(regression_artifact: Path) -> None:
    from modelship.model import artifact

    app = create_app(
        build_serving(Settings.model_validate({}), Predictor(artifact.load(regression_artifact)))
    )
    client = TestClient(app)  # no lifespan: the model is never marked ready
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 503
    assert client.post(f"/v2/models/{MODEL}/infer", json=_request()).status_code == 503
