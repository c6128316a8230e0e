"""Client traffic for tests against a served model: rows through every transport, and the
metrics a scrape returns."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

MODEL = "insurance-charges"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def send_every_transport(url: str, frame: pd.DataFrame) -> None:
    """The same kind of rows through /predict, /predict/batch, /predict/csv and V2 infer."""
    quarter = len(frame) // 4
    single, batch, csv, v2 = (frame.iloc[i * quarter : (i + 1) * quarter] for i in range(4))
    with httpx.Client(base_url=url, timeout=30) as client:
        for record in records(single):
            assert client.post("/predict", json=record).status_code == 200
        assert client.post("/predict/batch", json=records(batch)).status_code == 200
        text = io.StringIO()
        csv.to_csv(text, index=False)
        response = client.post(
            "/predict/csv", content=text.getvalue(), headers={"Content-Type": "text/csv"}
        )
        assert response.status_code == 200, response.text
        inputs = [
            {
                "name": name,
                "shape": [len(v2)],
                "datatype": "FP64" if pd.api.types.is_numeric_dtype(v2[name]) else "BYTES",
                "data": v2[name].tolist(),
            }
            for name in v2.columns
        ]
        response = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": inputs})
        assert response.status_code == 200, response.text


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
