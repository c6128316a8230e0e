"""The one object that holds the loaded ONNX session and turns validated arrays into predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelship.contracts.card import ModelCard
from modelship.errors import ArtifactError, InvalidInput, NoExplanation, Problem
from modelship.model.artifact import Artifact
from modelship.model.codecs.base import FeatureSchema, ModelInput
from modelship.model.codecs.records import RecordsCodec
from modelship.model.explain import Explainer, Explanations

if TYPE_CHECKING:
    pass

_ONNX_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "string": "tensor(string)"}


@dataclass(frozen=True)
class Predictions:
    """Regression: `values` (float32, one per row). Classification: `labels` and `probabilities`."""

    values: npt.NDArray[np.float32] | None = None
    labels: npt.NDArray[Any] | None = None
    probabilities: npt.NDArray[np.float32] | None = None

    def __len__(self) -> int:
        first = self.values if self.values is not None else self.labels
        assert first is not None
        return len(first)

    def row(self, i: int, classes: list[str] | None) -> dict[str, Any]:
        """One row as a JSON-ready object: numpy scalars are serialised by orjson."""
        if self.values is not None:
            return {"prediction": self.values[i]}
        assert self.labels is not None and self.probabilities is not None and classes is not None
        return {
            "prediction": self.labels[i],
            "probabilities": dict(zip(classes, self.probabilities[i], strict=True)),
        }

    def columns(self) -> list[npt.NDArray[Any]]:
        """The prediction columns appended to a CSV, in the card's `prediction_columns` order."""
        if self.values is not None:
            return [self.values]
        assert self.labels is not None and self.probabilities is not None
        return [self.labels, *self.probabilities.T]


class Predictor:
    def __init__(self, artifact: Artifact, threads: int = 1) -> None:
        options = ort.SessionOptions()
        # One worker process per core: more threads per session only add contention.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                artifact.onnx_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ArtifactError(f"{artifact.path}: the ONNX model cannot be loaded: {exc}") from exc
        self.card: ModelCard = artifact.card
        self.artifact_path = artifact.path  # files beside the model (the report) are served
        self.schema = FeatureSchema(artifact.card)
        self._numbers = [
            (self.schema.input_name[n], self.schema.dtype[n]) for n in self.schema.numeric
        ]
        self._check_inputs()
        self._outputs = [output.name for output in self._session.get_outputs()]
        self.is_classifier = artifact.card.task == "classification"
        self.explainer = (
            Explainer(artifact.explanation, len(self.card.features), threads)
            if artifact.explanation is not None
            else None
        )

    def _check_inputs(self) -> None:
        declared = {i.name: i.type for i in self._session.get_inputs()}
        expected = {f.input_name: _ONNX_TYPES[f.dtype] for f in self.card.features}
        if declared != expected:
            raise ArtifactError(
                f"the ONNX model's inputs {declared} do not match "
                f"the model card's features {expected}"
            )

    def _feeds(self, batch: ModelInput) -> dict[str, npt.NDArray[Any]]:
        """The batch's arrays in this graph's element types. A rollout decodes each request
        once, with the primary's schema; a candidate made before float64 inputs (or after)
        takes its numbers in the other type."""
        feeds = batch.feeds
        if all(feeds[name].dtype == dtype for name, dtype in self._numbers):
            return feeds
        return {**feeds, **{name: feeds[name].astype(dtype) for name, dtype in self._numbers}}

    def predict(self, batch: ModelInput) -> Predictions:
        outputs = self._session.run(self._outputs, self._feeds(batch))
        if self.is_classifier:
            result = Predictions(labels=outputs[0], probabilities=outputs[1])
            numbers = outputs[1]
        else:
            result = Predictions(values=outputs[0].reshape(-1))
            numbers = result.values
        if not np.isfinite(numbers).all():
            self._refuse_non_finite(numbers, batch)
        return result

    def explain(self, batch: ModelInput) -> Explanations:
        """Each row's exact contributions per input column (card.explanation says how)."""
        if self.explainer is None:
            files = self.card.explanation
            raise NoExplanation(
                f"this model ({self.card.model.estimator}) has no exact explanation: "
                + (
                    files.unavailable
                    if files is not None and files.unavailable
                    else "it was made before modelship recorded explanations; train or import "
                    "it again"
                )
            )
        return self.explainer.explain(self._feeds(batch))

    def explanation_row(self, explanations: Explanations, i: int) -> dict[str, Any]:
        """One row's explanation as JSON: per output (the prediction, or each class)."""
        assert self.explainer is not None
        columns = [f.name for f in self.card.features]
        names = self.explainer.outputs
        base = explanations.base
        contributions = explanations.contributions[i]
        per_output = {
            name: dict(zip(columns, contributions[:, k].tolist(), strict=True))
            for k, name in enumerate(names)
        }
        single = not self.is_classifier
        return {
            "method": explanations.method,
            "output_space": self.explainer.output_space,
            "base": float(base[0]) if single else dict(zip(names, base.tolist(), strict=True)),
            "contributions": per_output[names[0]] if single else per_output,
        }

    def _refuse_non_finite(self, numbers: npt.NDArray[Any], batch: ModelInput) -> None:
        """Inputs far outside the training data can overflow float32 arithmetic."""
        bad = np.flatnonzero(~np.isfinite(numbers.reshape(len(batch.row_locs), -1)).all(axis=1))
        ranges = "; ".join(
            f"{f.name} {f.numeric.min:g} to {f.numeric.max:g}"
            for f in self.card.features
            if f.numeric is not None
        )
        raise InvalidInput(
            [
                Problem(
                    batch.row_locs[int(row)],
                    "the model cannot compute a finite prediction for these values: they are "
                    "too far outside the training data",
                    f"values of the magnitude seen in training ({ranges})",
                )
                for row in bad[: InvalidInput.MAX_REPORTED]
            ],
            total=len(bad),
        )

    def warm_up(self) -> None:
        """Run the card's example rows once, so the first real request pays no first-call cost."""
        self.predict(RecordsCodec(self.schema).decode(self.card.examples))
