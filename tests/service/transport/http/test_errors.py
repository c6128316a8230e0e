"""Every kind of bad input gets a 4xx in one JSON shape that names what was wrong and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import make_client

EXAMPLE = {
    "age": 40,
    "sex": "male",
    "bmi": 28.5,
    "children": 1,
    "smoker": "no",
    "region": "northwest",
}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["status"] == status
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def locations(error: dict[str, Any]) -> list[list[Any]]:
    return [detail["loc"] for detail in error.get("details", [])]


@pytest.mark.parametrize(
    ("change", "location", "words"),
    [
        ({"age": "forty"}, ["body", "age"], "expected a number, got a string ('forty')"),
        ({"age": True}, ["body", "age"], "expected a number, got a boolean"),
        ({"bmi": [28.5]}, ["body", "bmi"], "expected a number, got an array"),
        ({"smoker": {"no": 1}}, ["body", "smoker"], "expected a category (string), got an object"),
        ({"region": None}, ["body", "region"], "expected a category (string), got null"),
    ],
)
def test_wrong_types_name_the_field(
    client: TestClient, change: dict[str, Any], location: list[str], words: str
) -> None:
    error = error_of(client.post("/predict", json={**EXAMPLE, **change}), 422)
    assert error["type"] == "invalid_input"
    assert locations(error) == [location]
    assert words in error["message"]
    assert "allowed" in error["details"][0]


def test_missing_and_extra_fields_are_each_reported(client: TestClient) -> None:
    record = {k: v for k, v in EXAMPLE.items() if k != "bmi"} | {"height": 180}
    error = error_of(client.post("/predict", json=record), 422)
    problems = {tuple(d["loc"]): d["problem"] for d in error["details"]}
    assert problems == {
        ("body", "bmi"): "required field is missing",
        ("body", "height"): "unknown field",
    }
    assert "2 more" not in error["message"]
    assert "(and 1 more problem)" in error["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"age": NaN}', "NaN and Infinity are not JSON numbers"),
        (b'{"age": Infinity}', "NaN and Infinity are not JSON numbers"),
        (b'{"age": 1e999}', "NaN and Infinity are not JSON numbers"),
        (b'{"age": 40,', "not valid JSON: unexpected end of data: line 1 column 12"),
        (b"", "the request body is empty"),
        (b'{"sex": "\xff\xfe"}', "not valid UTF-8"),
    ],
)
def test_malformed_json_is_400(client: TestClient, body: bytes, words: str) -> None:
    error = error_of(
        client.post("/predict", content=body, headers={"content-type": "application/json"}), 400
    )
    assert error["type"] == "malformed_body"
    assert words in error["message"]


def test_out_of_float32_range_is_rejected(client: TestClient) -> None:
    error = error_of(client.post("/predict", json={**EXAMPLE, "bmi": 1e300}), 422)
    assert locations(error) == [["body", "bmi"]]
    assert "out of range" in error["message"]


def test_not_an_object(client: TestClient) -> None:
    error = error_of(client.post("/predict", json=[EXAMPLE]), 422)
    assert "expected an object of feature values, got an array" in error["message"]


def test_null_is_imputed_and_unseen_categories_are_warned(client: TestClient) -> None:
    answer = client.post("/predict", json={**EXAMPLE, "bmi": None, "region": "atlantis"})
    assert answer.status_code == 200
    warnings = {w["field"]: w for w in answer.json()["warnings"]}
    assert warnings["bmi"]["problem"] == "missing value"
    assert "imputed with the training median" in warnings["bmi"]["note"]
    assert warnings["region"]["problem"] == "unseen category 'atlantis'"
    assert "'northeast'" in warnings["region"]["note"]


def test_batch_errors_name_the_row(client: TestClient) -> None:
    rows = [EXAMPLE, {**EXAMPLE, "children": "two"}, EXAMPLE, {**EXAMPLE, "age": None, "sex": 3}]
    error = error_of(client.post("/predict/batch", json=rows), 422)
    assert locations(error) == [["body", 1, "children"], ["body", 3, "sex"]] or locations(
        error
    ) == [["body", 1, "children"]]
    assert error["message"].startswith("row 1, field 'children': expected a number")


def test_batch_warnings_list_rows(client: TestClient) -> None:
    rows = [EXAMPLE, {**EXAMPLE, "region": "mars"}, {**EXAMPLE, "region": "mars"}]
    body = client.post("/predict/batch", json=rows).json()
    assert body["count"] == 3
    assert body["warnings"] == [
        {
            "field": "region",
            "problem": "unseen category 'mars'",
            "note": body["warnings"][0]["note"],
            "count": 2,
            "rows": [1, 2],
        }
    ]


def test_batch_shape_and_limit(regression_artifact: Path) -> None:
    with make_client(regression_artifact, max_batch_rows=3) as client:
        assert error_of(client.post("/predict/batch", json=EXAMPLE), 422)["message"].startswith(
            "expected a JSON array of records"
        )
        assert (
            "the batch is empty" in error_of(client.post("/predict/batch", json=[]), 422)["message"]
        )
        error = error_of(client.post("/predict/batch", json=[EXAMPLE] * 4), 413)
        assert error["type"] == "batch_too_large"
        assert "4 records, more than the limit of 3" in error["message"]
        assert client.post("/predict/batch", json=[EXAMPLE] * 3).status_code == 200


def test_body_over_the_size_limit_is_413(regression_artifact: Path) -> None:
    with make_client(regression_artifact, max_body_bytes=2048) as client:
        big = b"age,sex\n" + b"40,male\n" * 1000
        error = error_of(
            client.post("/predict/csv", content=big, headers={"content-type": "text/csv"}), 413
        )
        assert "larger than the limit of 2048 bytes" in error["message"]

        def chunks() -> Any:  # no Content-Length: the limit is enforced while streaming
            for _ in range(100):
                yield b"40,male,28.5,1,no,northwest\n"

        streamed = client.post(
            "/predict/csv", content=chunks(), headers={"content-type": "text/csv"}
        )
        assert error_of(streamed, 413)["type"] == "body_too_large"


def csv_post(client: TestClient, content: bytes, route: str = "/predict/csv") -> httpx.Response:
    response: httpx.Response = client.post(route, files={"file": ("data.csv", content, "text/csv")})
    return response


HEADER = b"age,sex,bmi,children,smoker,region\n"


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"", 400, "the CSV file is empty"),
        (HEADER, 400, "has a header row but no data rows"),
        (b"19,female,27.9,0,yes,southwest\n", 422, "the CSV needs a header row"),
        (
            b"age,sex,bmi\n19,female,27.9\n",
            422,
            "line 1, field 'children': required column is missing",
        ),
        (HEADER + b"19,female,27.9,0,yes\n", 422, "line 2: has 5 values but the header has 6"),
        (
            HEADER + b"19,female,27.9,0,yes,southwest\nold,male,30,1,no,northeast\n",
            422,
            "line 3, field 'age': expected a number, got 'old'",
        ),
        (
            HEADER + b"19,f\xe9male,27.9,0,yes,southwest\n",
            400,
            "not valid UTF-8 on line 2, column 5",
        ),
        (HEADER + b"inf,female,27.9,0,yes,southwest\n", 422, "number 'inf' is out of range"),
    ],
)
def test_bad_csv(client: TestClient, content: bytes, status: int, words: str) -> None:
    error = error_of(csv_post(client, content), status)
    assert words in error["message"]


def test_csv_needs_a_csv(client: TestClient) -> None:
    error = error_of(client.post("/predict/csv", json=EXAMPLE), 415)
    assert "send text/csv, or multipart/form-data" in error["message"]
    missing_field = client.post("/predict/csv", files={"upload": ("x.csv", HEADER)})
    assert "no file field named 'file'" in error_of(missing_field, 400)["message"]


def test_score_needs_the_target(client: TestClient) -> None:
    content = HEADER + b"19,female,27.9,0,yes,southwest\n"
    error = error_of(csv_post(client, content, "/score"), 422)
    assert "field 'charges': required column is missing" in error["message"]
    labelled = HEADER.strip() + b",charges\n19,female,27.9,0,yes,southwest,\n"
    error = error_of(csv_post(client, labelled, "/score"), 422)
    assert "line 2, field 'charges': the target value is missing" in error["message"]


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert error_of(client.get("/nope"), 404)["message"].startswith("no route /nope")
    assert (
        error_of(client.get("/predict"), 405)["message"] == "method GET is not allowed on /predict"
    )
    assert (
        "examples are numbered 0 to 4" in error_of(client.get("/model/examples/9"), 404)["message"]
    )
    assert error_of(client.get("/model/examples/x"), 422)["type"] == "invalid_request"
