"""POST /explain and `?explain=true`: per-row contributions per input column that add up to the
prediction, for a tree ensemble (the regression fixture) and a linear classifier (iris)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelship.model import artifact


def test_explain_adds_up_to_each_prediction(
    client: TestClient, insurance_frame: pd.DataFrame
) -> None:
    records = insurance_frame.drop(columns="charges").head(40).to_dict(orient="records")
    answer = client.post("/explain", json=records)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == 40
    plain = client.post("/predict/batch", json=records).json()["predictions"]
    for row, same in zip(body["predictions"], plain, strict=True):
        explanation = row["explanation"]
        assert explanation["method"] == "path-dependent TreeSHAP"
        # One contribution per original column, one-hot columns summed back to theirs.
        assert set(explanation["contributions"]) == set(records[0])
        total = explanation["base"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(row["prediction"], rel=1e-5)
        assert row["prediction"] == same["prediction"]
    smoker = [abs(r["explanation"]["contributions"]["smoker"]) for r in body["predictions"]]
    sex = [abs(r["explanation"]["contributions"]["sex"]) for r in body["predictions"]]
    assert sum(smoker) > sum(sex)  # smoking drives insurance charges, sex barely


def test_explain_one_record_and_explain_true_on_predict(client: TestClient) -> None:
    example = client.get("/model/examples/0").json()
    single = client.post("/explain", json=example).json()
    on_predict = client.post("/predict?explain=true", json=example).json()
    assert single["explanation"] == on_predict["explanation"]
    assert single["prediction"] == on_predict["prediction"]
    assert "explanation" not in client.post("/predict", json=example).json()
    batch = client.post("/predict/batch?explain=1", json=[example]).json()
    assert batch["predictions"][0]["explanation"] == single["explanation"]
    bad = client.post("/predict?explain=maybe", json=example)
    assert bad.status_code == 400
    assert "explain='maybe' must be true or false" in bad.json()["error"]["message"]
    invalid = client.post("/explain", json={**example, "age": "old"})
    assert invalid.status_code == 422


def test_linear_classifier_explains_each_class_in_log_odds(iris_client: TestClient) -> None:
    example = iris_client.get("/model/examples/0").json()
    body = iris_client.post("/explain", json=example).json()
    explanation = body["explanation"]
    assert explanation["method"] == "linear"
    classes = list(body["probabilities"])
    assert set(explanation["base"]) == set(classes)
    margins = {
        c: explanation["base"][c] + sum(explanation["contributions"][c].values()) for c in classes
    }
    # softmax(margins) is the model's probability of each class (multinomial logistic).
    top = max(margins.values())
    norm = sum(math.exp(m - top) for m in margins.values())
    for c in classes:
        assert math.exp(margins[c] - top) / norm == pytest.approx(
            body["probabilities"][c], abs=1e-5
        )


def test_a_model_without_an_explanation_says_why(regression_artifact: Path, tmp_path: Path) -> None:
    from tests.service.conftest import make_client

    old = artifact.load(regression_artifact)
    card = old.card.model_copy(update={"explanation": None})
    artifact.save(tmp_path, card, old.onnx_bytes)
    with make_client(tmp_path) as client:
        example = client.get("/model/examples/0").json()
        answer = client.post("/explain", json=example)
        assert answer.status_code == 409
        assert "made before modelship recorded explanations" in answer.json()["error"]["message"]
        assert client.post("/predict", json=example).status_code == 200


def test_v2_offers_the_explanation_as_extra_outputs(client: TestClient) -> None:
    example = client.get("/model/examples/0").json()
    native = client.post("/explain", json=example).json()
    inputs = [
        {
            "name": name,
            "shape": [1],
            "datatype": "BYTES" if isinstance(value, str) else "FP64",
            "data": [value],
        }
        for name, value in example.items()
    ]
    plain = client.post("/v2/models/insurance-charges/infer", json={"inputs": inputs}).json()
    assert [o["name"] for o in plain["outputs"]] == ["predicted_charges"]
    wanted = [
        {"name": n} for n in ("predicted_charges", "explanation_contributions", "explanation_base")
    ]
    body = client.post(
        "/v2/models/insurance-charges/infer", json={"inputs": inputs, "outputs": wanted}
    ).json()
    prediction, contributions, base = body["outputs"]
    columns = contributions["parameters"]["columns"].split(",")
    assert contributions["shape"] == [1, 1, len(columns)]
    assert dict(zip(columns, contributions["data"], strict=True)) == pytest.approx(
        native["explanation"]["contributions"]
    )
    assert base["data"] == pytest.approx([native["explanation"]["base"]])
    assert base["data"][0] + sum(contributions["data"]) == pytest.approx(
        prediction["data"][0], rel=1e-5
    )


def test_explain_takes_a_csv_and_answers_as_for_the_same_json_batch(
    regression_artifact: Path, insurance_frame: pd.DataFrame
) -> None:
    from tests.service.conftest import make_client

    features = insurance_frame.drop(columns="charges").head(120)
    text = features.to_csv(index=False)
    with make_client(regression_artifact, max_batch_rows=120, csv_chunk_rows=100) as client:
        as_json = client.post("/explain", json=features.to_dict(orient="records")).json()
        raw = client.post("/explain", content=text, headers={"Content-Type": "text/csv"})
        assert raw.status_code == 200, raw.text
        upload = client.post("/explain", files={"file": ("rows.csv", text, "text/csv")})
        for answer in (raw, upload):
            body = answer.json()
            assert body["count"] == 120
            # Read in chunks of 100, the rows still number on from chunk to chunk.
            rid = answer.headers["x-request-id"]
            assert [r["id"] for r in body["predictions"]] == [f"{rid}#{i}" for i in range(120)]
            for row, same in zip(body["predictions"], as_json["predictions"], strict=True):
                assert row["prediction"] == same["prediction"]
                assert row["explanation"] == same["explanation"]

        over = client.post(
            "/explain",
            content=pd.concat([features, features.head(1)]).to_csv(index=False),
            headers={"Content-Type": "text/csv"},
        )
        assert over.status_code == 413
        assert "more than the limit of 120" in over.json()["error"]["message"]
        missing = client.post(
            "/explain",
            content=features.drop(columns="bmi").to_csv(index=False),
            headers={"Content-Type": "text/csv"},
        )
        assert missing.status_code == 422
        assert "bmi" in missing.text
        empty = client.post(
            "/explain",
            content="age,sex,bmi,children,smoker,region\n",
            headers={"Content-Type": "text/csv"},
        )
        assert empty.status_code == 400
        assert "no data rows" in empty.json()["error"]["message"]
