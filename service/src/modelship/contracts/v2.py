"""Open Inference Protocol (KServe V2) REST wire types, named as in the protocol's spec.

Validated on the way in (a tensor's data must fill its shape), so the codec can trust them.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Parameters = dict[str, Any]


class ErrorResponse(BaseModel):
    """Every V2 error: `{"error": "<message>"}`, as the protocol defines it."""

    error: str


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class MetadataTensor(_Wire):
    name: str
    datatype: Datatype
    shape: list[int]


class MetadataServerResponse(_Wire):
    name: str
    version: str
    extensions: list[str]


class MetadataModelResponse(_Wire):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)
    parameters: Parameters | None = None


class RequestInput(_Wire):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = None

    @model_validator(mode="after")
    def _data_fills_shape(self) -> RequestInput:
        if any(dim < 0 for dim in self.shape):
            raise ValueError(f"input '{self.name}': shape {self.shape} has a negative dimension")
        if self.data is not None:
            self.data = flatten(self.data)
            check_size(self.name, self.shape, len(self.data))
        return self


class RequestOutput(_Wire):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Wire):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Wire):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any]


class InferenceResponse(_Wire):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


def flatten(data: list[Any]) -> list[Any]:
    """V2 allows tensor data flattened or nested in row-major order; we work with it flat."""
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(flatten(item) if isinstance(item, list) else [item])
    return flat


def check_size(name: str, shape: list[int], size: int) -> None:
    if math.prod(shape) != size:
        raise ValueError(
            f"input '{name}': shape {shape} holds {math.prod(shape)} values but data has {size}"
        )
