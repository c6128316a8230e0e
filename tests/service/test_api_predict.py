"""The prediction routes over HTTP (TestClient): answers match scikit-learn, errors are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient


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
    from modelship.training.data import model_frame

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

    from modelship.training.data import model_frame
    from modelship.training.models import REGRESSION, build_pipeline

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
        42,
    )
    return pipeline.fit(x_train, y_train)
