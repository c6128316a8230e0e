"""One data plane: the native and V2 routes obey the same limits, give the same predictions and
the same problems for the same rows, and refuse overload the same way (each in its own shape)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from modelship.contracts.settings import Settings
from modelship.contracts.v2 import ErrorResponse as V2ErrorResponse
from modelship.model.predictor import Predictor
from modelship.serving import dataplane as dataplane_module
from modelship.serving.dataplane import COLD_IN_FLIGHT, RATE_CHECK_EVERY, DataPlane
from modelship.transport.http.schemas import ErrorResponse
from tests.service.conftest import make_client

MODEL = "insurance-charges"
INFER = f"/v2/models/{MODEL}/infer"
ROW = {"age": 40, "sex": "male", "bmi": 28.5, "children": 1, "smoker": "no", "region": "northwest"}
KINDS = {"age": "FP64", "sex": "BYTES", "bmi": "FP64", "children": "INT64", "smoker": "BYTES"}


def v2_request(records: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(records[0])
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": KINDS.get(name, "BYTES"),
                "data": [record[name] for record in records],
            }
            for name in names
        ]
    }


def native_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = ErrorResponse.model_validate(response.json()).model_dump()["error"]
    assert error["status"] == status
    return error


def v2_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return V2ErrorResponse.model_validate(response.json()).error


@pytest.fixture
def small(regression_artifact: Path) -> Iterator[TestClient]:
    """Limits small enough to cross in a test."""
    with make_client(regression_artifact, max_batch_rows=5, max_body_bytes=4096) as client:
        yield client


def test_same_predictions(client: TestClient) -> None:
    rows = [ROW, {**ROW, "age": 61, "smoker": "yes"}, {**ROW, "bmi": 41.0, "children": 3}]
    native = client.post("/predict/batch", json=rows).json()["predictions"]
    v2 = client.post(INFER, json=v2_request(rows)).json()["outputs"][0]["data"]
    assert [p["prediction"] for p in native] == v2
    single = [client.post("/predict", json=row).json()["prediction"] for row in rows]
    assert single == v2


def test_same_row_limit(small: TestClient) -> None:
    rows = [ROW] * 6
    native = native_error(small.post("/predict/batch", json=rows), 413)
    assert native["type"] == "batch_too_large"
    assert "the batch has 6 records, more than the limit of 5" in native["message"]
    assert v2_error(small.post(INFER, json=v2_request(rows)), 413) == native["message"]
    assert small.post("/predict/batch", json=rows[:5]).status_code == 200
    assert small.post(INFER, json=v2_request(rows[:5])).status_code == 200


def test_same_byte_limit_each_in_its_shape(small: TestClient) -> None:
    padding = {"id": "x" * 5000}
    native = native_error(small.post("/predict/batch", json=[ROW, padding]), 413)
    assert native["type"] == "body_too_large"
    assert (
        v2_error(small.post(INFER, json={**v2_request([ROW]), **padding}), 413)
        == (native["message"])
    )


def test_same_problems_for_the_same_bad_rows(client: TestClient) -> None:
    rows = [ROW, {**ROW, "age": "forty"}, ROW, {**ROW, "bmi": 1e30, "smoker": 3.5}]
    native = native_error(client.post("/predict/batch", json=rows), 422)
    assert [d["loc"] for d in native["details"]] == [
        ["body", 1, "age"],
        ["body", 3, "bmi"],
    ]
    message = v2_error(client.post(INFER, json=v2_request(rows)), 400)
    assert message == native["message"]
    assert message.startswith("row 1, field 'age': expected a number, got a string ('forty')")
    assert "(and 1 more problem)" in message


def test_same_warnings(client: TestClient) -> None:
    rows = [ROW, {**ROW, "region": "mars"}]
    native = client.post("/predict/batch", json=rows).json()["warnings"]
    assert [(w["field"], w["rows"]) for w in native] == [("region", [1])]
    v2 = client.post(INFER, json=v2_request(rows)).json()["parameters"]["warnings"]
    assert v2 == "region: unseen category 'mars' (1 row)"


def test_overload_is_shed_in_each_shape_and_counted(client: TestClient) -> None:
    dataplane: DataPlane = client.app.state.dataplane  # type: ignore[attr-defined]
    before = _shed(client)
    dataplane.in_flight = dataplane.max_in_flight  # as if that many requests were running
    try:
        native = client.post("/predict", json=ROW)
        assert native_error(native, 503)["type"] == "overloaded"
        assert native.headers["retry-after"] == "1"
        v2 = client.post(INFER, json=v2_request([ROW]))
        assert "requests in flight" in v2_error(v2, 503)
        assert v2.headers["retry-after"] == "1"
        for probe in ("/healthz", "/readyz", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
            assert client.get(probe).status_code == 200, probe
        assert _shed(client) == before + 2
    finally:
        dataplane.in_flight = 0
    assert client.post("/predict", json=ROW).status_code == 200
    assert dataplane.in_flight == 0


def test_large_batches_time_out(regression_artifact: Path) -> None:
    rows = [ROW] * 1_500  # more than run inline
    with make_client(regression_artifact, request_timeout_seconds=1e-6) as client:
        native = native_error(client.post("/predict/batch", json=rows), 503)
        assert native["type"] == "timeout"
        assert "REQUEST_TIMEOUT_SECONDS" in v2_error(client.post(INFER, json=v2_request(rows)), 503)
        csv = "age,sex,bmi,children,smoker,region\n" + "40,male,28.5,1,no,northwest\n" * 1_500
        upload = client.post("/predict/csv", content=csv, headers={"content-type": "text/csv"})
        assert native_error(upload, 503)["type"] == "timeout"
        assert client.post("/predict", json=ROW).status_code == 200  # one row runs inline


def test_quality_hooks_see_every_prediction(client: TestClient) -> None:
    dataplane: DataPlane = client.app.state.dataplane  # type: ignore[attr-defined]
    seen: list[int] = []
    dataplane.quality_hooks.append(lambda batch, result, ids: seen.append(len(result)))
    client.post("/predict", json=ROW)
    client.post("/predict/batch", json=[ROW] * 3)
    client.post(INFER, json=v2_request([ROW] * 2))
    csv = "age,sex,bmi,children,smoker,region\n" + "40,male,28.5,1,no,northwest\n" * 4
    client.post("/predict/csv", content=csv, headers={"content-type": "text/csv"})
    assert seen == [1, 3, 2, 4]


def test_openapi_error_schema_is_the_error_model(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    expected = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = expected.pop("$defs")
    assert schemas["Error"] == expected
    for name, schema in defs.items():
        assert schemas[name] == schema


def _shed(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("modelship_requests_shed_total "):
            return float(line.split()[1])
    return 0.0


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _one_at_a_time(dataplane: DataPlane, clock: _Clock, seconds_per_request: float) -> None:
    """Requests one at a time with quiet spells between them, over about three seconds."""
    for _ in range(2 * RATE_CHECK_EVERY):
        assert dataplane.admit()
        clock.now += seconds_per_request
        dataplane.release()
        clock.now += 0.1


@pytest.mark.parametrize(
    ("seconds_per_request", "limit"),
    [
        (0.001, 50),  # 1,000/s x 50 ms
        (0.00005, 512),  # 20,000/s x 50 ms: the hard bound
        (0.01, 32),  # 100/s x 50 ms = 5: never below 32
    ],
)
def test_admission_follows_the_measured_rate(
    regression_predictor: Predictor,
    monkeypatch: pytest.MonkeyPatch,
    seconds_per_request: float,
    limit: int,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(dataplane_module, "time", SimpleNamespace(perf_counter=clock))
    dataplane = DataPlane(Settings(), regression_predictor)
    assert dataplane.in_flight_limit == COLD_IN_FLIGHT  # no rate measured yet
    _one_at_a_time(dataplane, clock, seconds_per_request)  # the quiet does not lower the rate
    assert dataplane.in_flight_limit == limit
    admitted = 0
    while dataplane.admit():
        admitted += 1
    assert admitted == limit and dataplane.full()


def test_a_worker_that_refuses_more_than_it_serves_keeps_to_32(
    regression_predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood, not a burst: a wait budget's queue would only delay every answer."""
    clock = _Clock()
    monkeypatch.setattr(dataplane_module, "time", SimpleNamespace(perf_counter=clock))
    dataplane = DataPlane(Settings(), regression_predictor)
    _one_at_a_time(dataplane, clock, 0.001)  # 1,000/s measured: 50 admitted
    assert dataplane.in_flight_limit == 50
    for _ in range(3):  # turns of 1,000 arrivals, each working off what it admitted
        admitted = sum(dataplane.admit() for _ in range(1_000))
        for _ in range(admitted):
            clock.now += 0.001
            dataplane.release()
    assert dataplane.in_flight_limit == COLD_IN_FLIGHT
    assert admitted == COLD_IN_FLIGHT
    _one_at_a_time(dataplane, clock, 0.001)  # over: a window with fewer refusals than answers
    assert dataplane.in_flight_limit == 50
