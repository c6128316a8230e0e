"""The model card: everything known about a trained model, saved as JSON beside the ONNX file.

The server derives its request schema, examples and metadata from this card alone.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelship.contracts.capacity import Capacity
from modelship.contracts.footprint import Footprint

Task = Literal["regression", "classification"]
FeatureKind = Literal["numeric", "categorical"]
# The element type of a feature's ONNX input, as numpy names it ("string" for categories).
InputDtype = Literal["float32", "float64", "string"]

CARD_SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumericStats(_Frozen):
    min: float
    max: float
    mean: float
    median: float
    missing: int = Field(description="Rows where the value was missing in the training data")


class NumericDistribution(_Frozen):
    """A numeric column's training distribution, the reference that drift is measured against.

    Bin i holds edges[i-1] <= x < edges[i] (the first bin everything below edges[0], the last
    everything from edges[-1] up); missing values are a bin of their own.
    """

    kind: Literal["numeric"] = "numeric"
    rows: int = Field(description="Rows the distribution was computed from")
    edges: list[float] = Field(description="Bin edges: training quantiles, duplicates removed")
    proportions: list[float] = Field(description="Share of rows per bin: len(edges) + 1 values")
    missing: float = Field(description="Share of rows with no value")


class CategoricalDistribution(_Frozen):
    """A categorical column's training distribution: the most frequent categories' shares and
    one "other" share for the rest (categories unseen in training fall there when serving)."""

    kind: Literal["categorical"] = "categorical"
    rows: int = Field(description="Rows the distribution was computed from")
    frequencies: dict[str, float] = Field(description="Share of rows per frequent category")
    other: float = Field(description="Share of rows of every other category")


Distribution = Annotated[NumericDistribution | CategoricalDistribution, Field(discriminator="kind")]


class Feature(_Frozen):
    name: str
    kind: FeatureKind
    input_name: str = Field(description="The ONNX input for this feature (names are sanitised)")
    numeric: NumericStats | None = None
    categories: list[str] | None = Field(
        default=None, description="Categories seen in training; others are accepted and ignored"
    )
    distribution: Distribution | None = Field(
        default=None, description="Training distribution (absent in artifacts made before it)"
    )
    dtype: InputDtype = Field(
        description="The element type the model's input takes: float64 for numbers in exports "
        "that scale in double before their trees (docs/import.md#where-parity-is-checked), "
        "float32 in artifacts made before them, string for categories"
    )

    @model_validator(mode="before")
    @classmethod
    def _dtype_of_older_cards(cls, data: Any) -> Any:
        """Cards written before `dtype` existed describe float32 and string inputs."""
        if isinstance(data, dict) and "dtype" not in data:
            return {**data, "dtype": "float32" if data.get("kind") == "numeric" else "string"}
        return data


class Parity(_Frozen):
    """How closely the exported ONNX model reproduces the original model.

    Trained models: scikit-learn on the held-out test split. Imported models: the original
    library (or the original ONNX file) on the import sample.
    """

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


class Provenance(_Frozen):
    """Where an imported model came from (absent for models trained by modelship)."""

    source_file: str = Field(description="The model file's name as given to `modelship import`")
    source_sha256: str
    source_bytes: int
    format: str = Field(description="skops, joblib, pickle, xgboost-json, xgboost-ubj, ...")
    library: str = Field(description="The library the model was made with")
    library_version: str | None = Field(
        default=None, description="The version that wrote the file, where the file records it"
    )
    converter: str = Field(description="What turned it into the served ONNX graph")
    trusted_pickle: bool = Field(
        default=False, description="The file was unpickled (--trust-pickle) during the import"
    )


class ArtifactFiles(_Frozen):
    onnx_file: str
    onnx_sha256: str
    onnx_bytes: int


class SearchInfo(_Frozen):
    """How the model search ran: its budgets, what it skipped or excluded, and why it chose."""

    time_budget_seconds: float
    seconds: float
    folds: int
    parallel_tasks: int
    max_model_mb: float
    max_serving_mb: float
    selection: str = Field(description="Why the chosen model won")
    holdout: bool = Field(
        False, description="Judged on one held-out fold (10,000+ rows) instead of every fold"
    )
    families: list[dict[str, Any]] = Field(
        default=[],
        description="What was searched per model family: configurations tried, the best, time",
    )
    skipped: list[str] = Field(default=[], description="Candidates not tried: budget spent")
    excluded: list[str] = Field(default=[], description="Candidates over the footprint budget")


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
    notes: list[str] = Field(
        default=[], description="What the report could not show, and why (e.g. no target)"
    )

    @property
    def files(self) -> dict[str, str]:
        """Every file of the report (relative path -> SHA-256), the page first."""
        return {self.page: self.page_sha256, **{p.file: p.sha256 for p in self.plots}}


class ExplanationFiles(_Frozen):
    """What exact per-prediction explanations need, or why the model has none."""

    method: str | None = Field(
        description="'path-dependent TreeSHAP' (node covers recorded from the source model) or "
        "'linear' (coefficients against the training means); None when there is no explanation"
    )
    file: str | None = Field(None, description="The arrays, relative to the artifact directory")
    sha256: str | None = None
    output_space: str | None = Field(
        None, description="The space contributions add up in (for classifiers, the mapping)"
    )
    unavailable: str | None = Field(None, description="Why this model has no exact explanation")


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
    provenance: Provenance | None = None
    footprint: Footprint | None = Field(
        default=None,
        description="What serving the model costs, measured at training time (absent on models "
        "made before modelship measured it)",
    )
    search: SearchInfo | None = Field(
        default=None, description="The model search's budgets and choice (absent for one --model)"
    )
    prediction_distribution: Distribution | None = Field(
        default=None,
        description="Distribution of the model's predictions on the held-out test split (on the "
        "sample for an imported model; predicted classes for classification)",
    )
    report: ReportFiles | None = Field(
        None, description="The training report; None for artifacts made before reports existed"
    )
    explanation: ExplanationFiles | None = Field(
        None, description="Exact explanations of each prediction; None for older artifacts"
    )
    capacity: Capacity | None = Field(
        None,
        description="What one replica serves, measured under confinement by `modelship "
        "capacity`; None until measured",
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
