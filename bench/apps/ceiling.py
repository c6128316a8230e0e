"""Comparison server 3: the practical ceiling for a Python HTTP server.

Bare FastAPI + onnxruntime: no validation, no metrics, no logging, no auth. Started by
bench/run.py: `uvicorn ceiling:app --app-dir bench/apps`, BENCH_ARTIFACT set.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

artifact = Path(os.environ["BENCH_ARTIFACT"])
card = json.loads((artifact / "model-card.json").read_text())
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(str(artifact / "model.onnx"), options)
# Each input in the element type the graph declares (float64 numbers since issue 35, float32 in
# older artifacts, strings for categories).
DTYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(string)": object}
dtype_of = {i.name: DTYPES[i.type] for i in session.get_inputs()}
features = [(f["name"], f["input_name"], dtype_of[f["input_name"]]) for f in card["features"]]
app = FastAPI()


def feeds(columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    return {
        input_name: np.asarray(columns[name], dtype=dtype).reshape(-1, 1)
        for name, input_name, dtype in features
    }


@app.get("/health")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/predict")
async def predict(request: Request) -> Response:
    record = orjson.loads(await request.body())
    out = session.run(None, feeds({name: [record[name]] for name, _, _ in features}))
    return Response(
        orjson.dumps({"prediction": float(out[0][0][0])}), media_type="application/json"
    )


@app.post("/predict/batch")
async def predict_batch(request: Request) -> Response:
    records = orjson.loads(await request.body())
    columns = {name: [r[name] for r in records] for name, _, _ in features}
    out = session.run(None, feeds(columns))
    body = orjson.dumps({"predictions": out[0].reshape(-1)}, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json")


@app.post("/predict/csv")
async def predict_csv(request: Request) -> Response:
    rows = list(csv.reader(io.StringIO((await request.body()).decode())))
    header, data = rows[0], rows[1:]
    at = {name: header.index(name) for name, _, _ in features}
    columns = {name: [row[at[name]] for row in data] for name, _, _ in features}
    predictions = session.run(None, feeds(columns))[0].reshape(-1).astype(str)
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow([*header, "prediction"])
    writer.writerows([*row, p] for row, p in zip(data, predictions, strict=True))
    return Response(sink.getvalue(), media_type="text/csv")
