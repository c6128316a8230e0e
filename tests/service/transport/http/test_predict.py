"""The prediction routes over HTTP (TestClient): answers match scikit-learn, errors are clear."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelship.transport.http.logging import request_id
from modelship.transport.http.middleware import ServingMiddleware
from tests.service.conftest import make_client


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_example_row_predicts(client: TestClient) -> None:
    example = client.get("/model/examples/0").json()
    answer = client.post("/predict", json=example)
    assert answer.status_code == 200
    body = answer.json()
    assert isinstance(body["prediction"], float)
    assert body["warnings"] == []
    assert body["model_version"] == client.get("/model").json()["version"]


def test_served_predictions_equal_scikit_learn(
    client: TestClient, insurance_frame: pd.DataFrame, regression_artifact: Path
) -> None:
    from modelship.build.training.data import model_frame

    rows = insurance_frame.drop(columns="charges").head(50)
    records = rows.to_dict(orient="records")
    served = [
        p["prediction"] for p in client.post("/predict/batch", json=records).json()["predictions"]
    ]
    single = [client.post("/predict", json=r).json()["prediction"] for r in records[:5]]
    pipeline = _sklearn_pipeline(insurance_frame)
    kinds = {c: ("numeric" if rows[c].dtype.kind in "if" else "categorical") for c in rows}
    expected = pipeline.predict(model_frame(rows.astype(str), kinds))  # type: ignore[arg-type]
    np.testing.assert_allclose(served, expected, rtol=1e-4)
    np.testing.assert_allclose(single, expected[:5], rtol=1e-4)


def _sklearn_pipeline(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    """The same pipeline the artifact was exported from, fitted again in-process."""
    from sklearn.model_selection import train_test_split

    from modelship.build.training.data import model_frame
    from modelship.build.training.models import REGRESSION, Sizing, build_pipeline

    x = frame.drop(columns="charges").astype(str)
    kinds = {
        "age": "numeric",
        "sex": "categorical",
        "bmi": "numeric",
        "children": "numeric",
        "smoker": "categorical",
        "region": "categorical",
    }
    features = model_frame(x, kinds)  # type: ignore[arg-type]
    x_train, _, y_train, _ = train_test_split(
        features, frame["charges"], test_size=0.2, random_state=42
    )
    pipeline = build_pipeline(
        REGRESSION["gradient_boosting"],
        ["age", "bmi", "children"],
        ["sex", "smoker", "region"],
        None,
        Sizing(rows=len(x_train), classes=0, seed=42, threads=1, max_model_bytes=40 * 2**20),
    )
    return pipeline.fit(x_train, y_train)


def test_classifier_answers_labels_and_probabilities(
    iris_client: TestClient, iris_csv: Path
) -> None:
    from sklearn.model_selection import train_test_split

    from modelship.build.training.data import model_frame, read_csv
    from modelship.build.training.models import CLASSIFICATION, Sizing, build_pipeline

    raw = read_csv(iris_csv).frame
    names = [c for c in raw.columns if c != "species"]
    features = model_frame(raw, dict.fromkeys(names, "numeric"))
    x_train, _, y_train, _ = train_test_split(
        features, raw["species"], test_size=0.2, random_state=42, stratify=raw["species"]
    )
    sizing = Sizing(rows=len(x_train), classes=3, seed=42, threads=1, max_model_bytes=40 * 2**20)
    pipeline = build_pipeline(CLASSIFICATION["logistic"], names, [], None, sizing)
    pipeline.fit(x_train, y_train)

    records = pd.read_csv(iris_csv).drop(columns="species").to_dict(orient="records")
    body = iris_client.post("/predict/batch", json=records).json()
    served_labels = [p["prediction"] for p in body["predictions"]]
    served_proba = [[p["probabilities"][c] for c in pipeline.classes_] for p in body["predictions"]]
    assert served_labels == list(pipeline.predict(features))
    np.testing.assert_allclose(served_proba, pipeline.predict_proba(features), atol=1e-5)

    one = iris_client.post("/predict", json=records[0]).json()
    assert one["prediction"] == "setosa"
    assert set(one["probabilities"]) == {"setosa", "versicolor", "virginica"}


def test_csv_upload_appends_predictions(client: TestClient, insurance_csv: Path) -> None:
    content = insurance_csv.read_bytes()
    answer = client.post("/predict/csv", content=content, headers={"content-type": "text/csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="predictions.csv"' in answer.headers["content-disposition"]
    result = pd.read_csv(io.StringIO(answer.text))
    original = pd.read_csv(insurance_csv)
    pd.testing.assert_frame_equal(result[original.columns], original)
    records = original.drop(columns="charges").head(20).to_dict(orient="records")
    batch = client.post("/predict/batch", json=records).json()["predictions"]
    np.testing.assert_allclose(
        result["predicted_charges"].head(20), [p["prediction"] for p in batch], rtol=1e-6
    )


def test_csv_keeps_extra_columns_and_reports_warnings(client: TestClient) -> None:
    content = (
        b"id,age,sex,bmi,children,smoker,region\n"
        b"a1,40,male,28.5,1,no,northwest\n"
        b"a2,41,male,,1,no,atlantis\n"
    )
    answer = client.post("/predict/csv", files={"file": ("x.csv", content, "text/csv")})
    assert answer.status_code == 200
    lines = answer.text.splitlines()
    assert lines[0] == "id,age,sex,bmi,children,smoker,region,predicted_charges,prediction_id"
    assert lines[2].startswith("a2,41,male,,1,no,atlantis,")
    assert answer.headers["x-modelship-rows"] == "2"
    assert "region: unseen category 'atlantis' (1 row)" in answer.headers["x-modelship-warnings"]
    assert "bmi: missing value (1 row)" in answer.headers["x-modelship-warnings"]


def test_csv_answer_is_the_scored_file_byte_for_byte_with_its_length(
    client: TestClient, regression_artifact: Path
) -> None:
    """The answer of a file over several 1 MiB send blocks, with quoting (commas and a line
    break inside quotes), blank lines, unicode and CRLF line ends, is exactly what the CSV
    scoring writes, and says its length (sent whole, not chunked)."""
    from modelship.model import artifact
    from modelship.model.predictor import Predictor
    from modelship.serving.scoring import predict_csv

    lines = ["note,age,sex,bmi,children,smoker,region"]
    for i in range(30_000):
        note = ["plain", '"a, quoted"', '"two\r\nlines"', "ünïcødé ✓", ""][i % 5]
        lines.append(f"{note},{20 + i % 40},female,{25 + i % 9}.25,{i % 3},no,northwest")
        if i % 997 == 0:
            lines.append("")
    content = "\r\n".join(lines).encode() + b"\r\n"
    answer = client.post(
        "/predict/csv", content=content, headers={"content-type": "text/csv", "X-Request-Id": "f"}
    )
    assert answer.status_code == 200, answer.text
    expected = io.StringIO(newline="")
    predict_csv(
        Predictor(artifact.load(regression_artifact)),
        io.BytesIO(content),
        expected,
        5_000,
        request_id="f",
    )
    assert len(answer.content) > 2**20
    assert answer.content == expected.getvalue().encode()
    assert answer.headers["content-length"] == str(len(answer.content))
    assert "transfer-encoding" not in answer.headers


@pytest.mark.slow
def test_csv_of_100k_rows(client: TestClient, insurance_csv: Path) -> None:
    header, *rows = insurance_csv.read_bytes().splitlines()
    big = header + b"\n" + b"\n".join(rows[i % len(rows)] for i in range(100_000)) + b"\n"
    answer = client.post("/predict/csv", content=big, headers={"content-type": "text/csv"})
    assert answer.status_code == 200
    assert answer.headers["x-modelship-rows"] == "100000"
    assert answer.text.count("\n") == 100_001


def test_score_matches_training_metrics_on_the_same_rows(
    client: TestClient, iris_client: TestClient, insurance_csv: Path, iris_csv: Path
) -> None:
    from modelship.model_quality import regression_metrics

    answer = client.post("/score", files={"file": ("x.csv", insurance_csv.read_bytes())}).json()
    predicted = pd.read_csv(
        io.StringIO(
            client.post("/predict/csv", files={"file": ("x.csv", insurance_csv.read_bytes())}).text
        )
    )
    expected = regression_metrics(predicted["charges"], predicted["predicted_charges"])
    assert answer["rows"] == 1338
    for name in ("r2", "mae", "rmse"):
        assert answer["metrics"][name] == pytest.approx(expected[name], rel=1e-6)
    assert set(answer["training_metrics"]) == {"r2", "mae", "rmse"}

    iris = iris_client.post("/score", files={"file": ("x.csv", iris_csv.read_bytes())}).json()
    assert iris["metrics"]["accuracy"] > 0.9
    assert set(iris["metrics"]["per_class"]) == {"setosa", "versicolor", "virginica"}


async def _asgi(
    app: Any, body: bytes, query: bytes = b"", pieces: int = 1, of: Any = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST /predict through `app`'s ASGI interface (a part of the application `of`), the body
    sent in `pieces` messages."""
    size = -(-len(body) // pieces) or 1
    messages = [
        {"type": "http.request", "body": body[i : i + size], "more_body": i + size < len(body)}
        for i in range(0, max(len(body), 1), size)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": query,
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"same-id")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
        "state": {},
        "app": of or app,
    }
    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    headers.pop(b"x-request-id", None)  # added by the middleware around the route
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_hot_path_answers_as_the_fastapi_route(client: TestClient) -> None:
    # POST /predict is answered inside the serving middleware, past FastAPI; the FastAPI route
    # behind it must give the same answers: bodies, headers, errors and statuses.
    app: Any = client.app
    serving = app.middleware_stack
    while not isinstance(serving, ServingMiddleware):
        serving = serving.app
    example = client.get("/model/examples/0").json()
    cases: list[tuple[bytes, bytes]] = [
        (json.dumps(example).encode(), b""),
        (json.dumps(example).encode(), b"explain=true"),
        (json.dumps({**example, "age": -5}).encode(), b""),
        (json.dumps({**example, "bmi": "heavy"}).encode(), b""),
        (json.dumps({"age": 30}).encode(), b""),
        (json.dumps([example]).encode(), b""),
        (b"{not json", b""),
        (b"", b""),
        (json.dumps(example).encode(), b"explain=maybe"),
    ]
    statuses = set()
    for body, query in cases:
        hot = asyncio.run(_asgi(app, body, query))
        token = request_id.set("same-id")
        try:
            route = asyncio.run(_asgi(serving.app, body, query, of=app))
        finally:
            request_id.reset(token)
        assert hot == route, (body, query)
        assert asyncio.run(_asgi(app, body, query, pieces=3)) == hot
        statuses.add(hot[0])
    assert statuses == {200, 400, 422}


def test_a_body_without_length_is_refused_once_over_the_limit(regression_artifact: Path) -> None:
    with make_client(regression_artifact, max_body_bytes=1024) as small:
        example = json.dumps(small.get("/model/examples/0").json()).encode()
        status, _, body = asyncio.run(_asgi(small.app, example + b" " * 2000, pieces=4))
        assert status == 413
        assert json.loads(body)["error"]["type"] == "body_too_large"
        assert asyncio.run(_asgi(small.app, example, pieces=4))[0] == 200
