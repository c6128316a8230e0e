"""Open Inference Protocol (KServe V2) tensors to and from the model's arrays.

V2 tensors are decoded into records and validated by the same `RecordsCodec` as the native
routes, so there is one set of validation rules (and one set of warnings) for both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelship.contracts.card import InputDtype, ModelCard
from modelship.contracts.v2 import (
    InferenceRequest,
    MetadataModelResponse,
    MetadataTensor,
    check_size,
)
from modelship.errors import InvalidTensor
from modelship.model.codecs.base import ModelInput
from modelship.model.codecs.records import RecordsCodec
from modelship.model.explain import Explanations
from modelship.model.predictor import Predictions

NUMERIC_DATATYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
# Little-endian numpy dtypes of the binary tensor data extension (Triton's binary_data=True).
BINARY_DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
PLATFORM = "onnxruntime_onnx"
# The V2 datatype of each input element type the model can take.
_V2_DATATYPES: dict[InputDtype, str] = {"float32": "FP32", "float64": "FP64", "string": "BYTES"}


def decode_binary(request: InferenceRequest, payload: bytes) -> None:
    """Fill `data` of inputs sent in the binary tensor data extension (in order, after the JSON)."""
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(payload):
            raise InvalidTensor(
                f"input '{tensor.name}': binary_data_size {size!r} exceeds the body"
            )
        chunk = payload[offset : offset + size]
        offset += size
        if tensor.datatype == "BYTES":
            tensor.data = _bytes_elements(tensor.name, chunk)
        else:
            dtype = np.dtype(BINARY_DTYPES[tensor.datatype])
            if size % dtype.itemsize:
                raise InvalidTensor(
                    f"input '{tensor.name}': {size} bytes is not a whole {dtype} tensor"
                )
            tensor.data = np.frombuffer(chunk, dtype=dtype).tolist()
        try:
            check_size(tensor.name, tensor.shape, len(tensor.data))
        except ValueError as exc:
            raise InvalidTensor(str(exc)) from None
    if offset != len(payload):
        raise InvalidTensor(
            f"the body has {len(payload) - offset} bytes after the last binary input"
        )


def _bytes_elements(name: str, chunk: bytes) -> list[Any]:
    """BYTES elements in binary form: each a 4-byte little-endian length, then the bytes."""
    out: list[Any] = []
    at = 0
    while at < len(chunk):
        length = int.from_bytes(chunk[at : at + 4], "little")
        if at + 4 + length > len(chunk):
            raise InvalidTensor(f"input '{name}': a BYTES element runs past the end of its data")
        raw = chunk[at + 4 : at + 4 + length]
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidTensor(f"input '{name}': a BYTES element is not valid UTF-8") from None
        at += 4 + length
    return out


EXPLANATION_CONTRIBUTIONS = "explanation_contributions"
EXPLANATION_BASE = "explanation_base"


class V2Codec:
    """Model metadata and tensor decoding/encoding, derived once from the model card."""

    def __init__(self, card: ModelCard, records: RecordsCodec) -> None:
        self.card = card
        self.records = records
        self.schema = records.schema
        self.kinds = {f.name: f.kind for f in card.features}
        self.prediction_output = f"predicted_{card.target}"
        self.outputs = [
            MetadataTensor(
                name=self.prediction_output,
                datatype="BYTES" if card.classes is not None else "FP32",
                shape=[-1],
            )
        ]
        if card.classes is not None:
            self.outputs.append(
                MetadataTensor(name="probabilities", datatype="FP32", shape=[-1, len(card.classes)])
            )
        self.output_names = [o.name for o in self.outputs]
        # Sent only when asked for by name: the explanation of each row (docs/open-inference-
        # protocol.md#explanations), [rows, outputs, columns] contributions and [outputs] base.
        self.explanation_outputs = (
            [
                MetadataTensor(name=EXPLANATION_CONTRIBUTIONS, datatype="FP64", shape=[-1, -1, -1]),
                MetadataTensor(name=EXPLANATION_BASE, datatype="FP64", shape=[-1]),
            ]
            if card.explanation is not None and card.explanation.method is not None
            else []
        )

    def metadata(self) -> MetadataModelResponse:
        """Every feature as a named input: BYTES for categories, FP64 or FP32 for numbers (the
        element type the model's input takes)."""
        card = self.card
        return MetadataModelResponse(
            name=card.name,
            versions=[card.version],
            platform=PLATFORM,
            inputs=[
                MetadataTensor(
                    name=f.name,
                    datatype=_V2_DATATYPES[f.dtype],
                    shape=[-1],
                )
                for f in card.features
            ],
            outputs=self.outputs + self.explanation_outputs,
            parameters={"task": card.task, "target": card.target, "classes": card.classes},
        )

    @staticmethod
    def rows(request: InferenceRequest) -> int:
        """How many rows the request claims (its first input's first dimension)."""
        shape = request.inputs[0].shape
        return shape[0] if shape else 0

    def decode(self, request: InferenceRequest) -> ModelInput:
        """One tensor per feature, shape [N] or [N, 1], into the validated model input arrays."""
        columns: dict[str, list[Any]] = {}
        rows: int | None = None
        for tensor in request.inputs:
            kind = self.kinds.get(tensor.name)
            if kind is None:
                raise InvalidTensor(
                    f"unexpected input '{tensor.name}': the model's inputs are "
                    + ", ".join(self.schema.names)
                )
            if tensor.name in columns:
                raise InvalidTensor(f"input '{tensor.name}' is given more than once")
            if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
                raise InvalidTensor(
                    f"input '{tensor.name}': shape {tensor.shape} is not accepted; "
                    "use [N] or [N, 1] (one value per row)"
                )
            if kind == "categorical" and tensor.datatype != "BYTES":
                raise InvalidTensor(
                    f"input '{tensor.name}' is categorical: its datatype must be BYTES, "
                    f"not {tensor.datatype}"
                )
            if kind == "numeric" and tensor.datatype not in NUMERIC_DATATYPES:
                raise InvalidTensor(
                    f"input '{tensor.name}' is numeric: its datatype must be FP32, FP64 or "
                    f"INT64 (or another numeric type), not {tensor.datatype}"
                )
            if tensor.data is None:
                raise InvalidTensor(f"input '{tensor.name}' has no data")
            if rows is None:
                rows = tensor.shape[0]
            elif tensor.shape[0] != rows:
                raise InvalidTensor(
                    f"input '{tensor.name}' has {tensor.shape[0]} rows but "
                    f"'{request.inputs[0].name}' has {rows}: every input needs one value per row"
                )
            columns[tensor.name] = tensor.data
        missing = [name for name in self.schema.names if name not in columns]
        if missing:
            raise InvalidTensor(
                f"missing input{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}: "
                "the model needs one input tensor per feature"
            )
        if not rows:
            raise InvalidTensor("the inputs have no rows: shape [0]")
        names = list(columns)
        records = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        return self.records.decode(records, ("inputs",))

    def requested(self, request: InferenceRequest) -> list[str]:
        if not request.outputs:
            return self.output_names
        names = [o.name for o in request.outputs]
        known = self.output_names + [o.name for o in self.explanation_outputs]
        for name in names:
            if name not in known:
                raise InvalidTensor(
                    f"unknown output '{name}': the model's outputs are " + ", ".join(known)
                )
        return names

    def wants_explanation(self, request: InferenceRequest) -> bool:
        return any(
            o.name in (EXPLANATION_CONTRIBUTIONS, EXPLANATION_BASE) for o in request.outputs or []
        )

    def encode(
        self,
        request: InferenceRequest,
        batch: ModelInput,
        result: Predictions,
        explanations: Explanations | None = None,
    ) -> dict[str, Any]:
        """The response body; numeric data stays numpy so orjson writes it without copies."""
        wanted = self.requested(request)
        outputs: list[dict[str, Any]] = []
        for name in wanted:
            if name in (EXPLANATION_CONTRIBUTIONS, EXPLANATION_BASE):
                assert explanations is not None
                outputs.append(self._explanation(name, explanations))
            elif name == "probabilities":
                assert result.probabilities is not None
                probabilities = result.probabilities
                outputs.append(
                    {
                        "name": name,
                        "datatype": "FP32",
                        "shape": list(probabilities.shape),
                        "data": probabilities.reshape(-1),
                    }
                )
            elif result.values is not None:
                outputs.append(
                    {"name": name, "datatype": "FP32", "shape": [batch.rows], "data": result.values}
                )
            else:
                assert result.labels is not None
                outputs.append(
                    {
                        "name": name,
                        "datatype": "BYTES",
                        "shape": [batch.rows],
                        "data": [str(label) for label in result.labels.tolist()],
                    }
                )
        body: dict[str, Any] = {
            "model_name": self.card.name,
            "model_version": self.card.version,
            "outputs": outputs,
        }
        if request.id is not None:
            body["id"] = request.id
        if batch.warnings:
            body["parameters"] = {"warnings": batch.warnings.summary()}
        return body

    def _explanation(self, name: str, explanations: Explanations) -> dict[str, Any]:
        """Contributions as [rows, outputs, columns] (the card's feature order), or the base."""
        if name == EXPLANATION_BASE:
            data = explanations.base
        else:
            data = np.ascontiguousarray(explanations.contributions.transpose(0, 2, 1))
        return {
            "name": name,
            "datatype": "FP64",
            "shape": list(data.shape),
            "data": data.reshape(-1),
            "parameters": {
                "method": explanations.method,
                "columns": ",".join(f.name for f in self.card.features),
            },
        }
