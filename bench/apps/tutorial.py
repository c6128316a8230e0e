"""Comparison server 1: what most tutorials ship.

FastAPI loads the scikit-learn pipeline with joblib and predicts on a one-row pandas DataFrame per
request. Started by bench/run.py: `uvicorn tutorial:app --app-dir bench/apps`, BENCH_PIPELINE set.
"""

from __future__ import annotations

import io
import os
from typing import Any

import joblib
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
pipeline = joblib.load(os.environ["BENCH_PIPELINE"])


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(record: dict[str, Any]) -> dict[str, float]:
    frame = pd.DataFrame([record])
    return {"prediction": float(pipeline.predict(frame)[0])}


@app.post("/predict/batch")
def predict_batch(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    frame = pd.DataFrame(records)
    return {"predictions": pipeline.predict(frame).tolist()}


@app.post("/predict/csv")
async def predict_csv(request: Request) -> Response:
    frame = pd.read_csv(io.BytesIO(await request.body()))
    frame["prediction"] = pipeline.predict(frame)
    return Response(frame.to_csv(index=False), media_type="text/csv")
