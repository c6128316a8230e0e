"""The model card: everything known about a trained model, saved as JSON beside the ONNX file.

The server derives its request schema, examples and metadata from this card alone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Task = Literal["regression", "classification"]
FeatureKind = Literal["numeric", "categorical"]

CARD_SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumericStats(_Frozen):
    min: float
    max: float
    mean: float
    median: float
    missing: int = Field(description="Rows where the value was missing in the training data")


class Feature(_Frozen):
    name: str
    kind: FeatureKind
    input_name: str = Field(description="The ONNX input for this feature (names are sanitised)")
    numeric: NumericStats | None = None
    categories: list[str] | None = Field(
        default=None, description="Categories seen in training; others are accepted and ignored"
    )


class Parity(_Frozen):
    """How closely the exported ONNX model reproduces scikit-learn on the held-out test split."""

    rows: int
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    label_agreement: float | None = None


class TrainingData(_Frozen):
    source: str
    sha256: str
    rows: int
    rows_used: int
    train_rows: int
    test_rows: int


class ModelInfo(_Frozen):
    kind: str
    estimator: str
    params: dict[str, Any]
    polynomial_degree: int | None = None


class ArtifactFiles(_Frozen):
    onnx_file: str
    onnx_sha256: str
    onnx_bytes: int


class ReportPlot(_Frozen):
    """One plot of the training report, also kept as its own SVG file."""

    name: str = Field(description="Short identifier, e.g. confusion-matrix")
    title: str
    file: str = Field(description="Path of the SVG file, relative to the artifact directory")
    sha256: str
    key: bool = Field(False, description="Shown on the web page next to the form")


class ReportFiles(_Frozen):
    """The training report stored in the artifact: a self-contained HTML page and its plots."""

    page: str = Field(description="The HTML page, relative to the artifact directory")
    page_sha256: str
    plots: list[ReportPlot]

    @property
    def files(self) -> dict[str, str]:
        """Every file of the report (relative path -> SHA-256), the page first."""
        return {self.page: self.page_sha256, **{p.file: p.sha256 for p in self.plots}}


class ModelCard(_Frozen):
    schema_version: int = CARD_SCHEMA_VERSION
    name: str
    task: Task
    target: str
    features: list[Feature]
    classes: list[str] | None = None
    model: ModelInfo
    metrics: dict[str, Any]
    leaderboard: list[dict[str, Any]] | None = None
    parity: Parity
    training_data: TrainingData
    versions: dict[str, str]
    created_at: str
    examples: list[dict[str, Any]]
    artifact: ArtifactFiles
    report: ReportFiles | None = Field(
        None, description="The training report; None for artifacts made before reports existed"
    )

    @property
    def version(self) -> str:
        """Short, content-derived version: changes exactly when the exported model changes."""
        return self.artifact.onnx_sha256[:12]

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def prediction_columns(self) -> list[str]:
        """Columns appended to a CSV by batch prediction, in order."""
        columns = [f"predicted_{self.target}"]
        if self.classes is not None:
            columns += [f"probability_{label}" for label in self.classes]
        return columns
