"""The native routes' wire types. The OpenAPI document is made from them; handlers write JSON
directly (for speed), and the error body is built from `ErrorResponse` itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="Where: body/file, row or line, field")
    problem: str
    allowed: str | None = Field(None, description="What would have been accepted")


class ErrorInfo(BaseModel):
    status: int
    type: str = Field(description="Machine-readable kind of error", examples=["invalid_input"])
    message: str = Field(description="What was wrong, for people")
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """Every error of the native routes, whatever raised it."""

    model_config = {"title": "Error"}

    error: ErrorInfo


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(description="ready, or loading / does not fit (with status 503)")
    model: str | None = None
    version: str | None = None
    message: str | None = Field(
        None, description="Why the model does not fit: its measured memory and the limit"
    )


class WarningItem(BaseModel):
    field: str
    problem: str = Field(examples=["unseen category 'mars'"])
    note: str
    count: int = Field(description="How many rows have this problem")
    rows: list[int] | None = Field(None, description="The first rows (or CSV lines) affected")


class Prediction(BaseModel):
    prediction: float | str = Field(description="Predicted value, or class label")
    probabilities: dict[str, float] | None = Field(
        None, description="Classifiers: probability of each class"
    )
    id: str = Field(
        description="The prediction id labels name (POST /feedback): the request id for one "
        "record, <request id>#<row> for the rows of a batch",
        examples=["3f9c2a#0"],
    )


class Explanation(BaseModel):
    """base + the sum of contributions is the prediction, in `output_space`."""

    method: str = Field(
        description="'path-dependent TreeSHAP' (tree ensembles, node covers from training) or "
        "'linear' (coefficient x (value - training mean))"
    )
    output_space: str = Field(description="What the numbers add up to (classifiers: the mapping)")
    base: float | dict[str, float] = Field(
        description="The expected output over the training data (classifiers: per class)"
    )
    contributions: dict[str, float] | dict[str, dict[str, float]] = Field(
        description="Per input column (derived features such as one-hot columns summed back); "
        "classifiers: per class, then per column"
    )


class ExplainedPrediction(Prediction):
    explanation: Explanation


class PredictResponse(Prediction):
    warnings: list[WarningItem]
    model_version: str


class BatchResponse(BaseModel):
    predictions: list[Prediction] = Field(description="One per record, in order")
    count: int
    warnings: list[WarningItem]
    model_version: str


class ExplainedPredictResponse(PredictResponse):
    """One record: the /predict answer plus its `explanation`."""

    explanation: Explanation


class ExplainResponse(BaseModel):
    """A list of records: the /predict/batch answer, each prediction with its `explanation`."""

    predictions: list[ExplainedPrediction] = Field(description="One per record, in order")
    count: int
    warnings: list[WarningItem]
    model_version: str


class ScoreResponse(BaseModel):
    rows: int
    metrics: dict[str, Any] = Field(description="The same metrics as training reports")
    training_metrics: dict[str, Any] | None = Field(description="Test-split metrics from training")
    warnings: list[WarningItem]
    model_version: str


def ok(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model}}
