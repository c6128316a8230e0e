"""Rewrite an ONNX graph so it meets the server's contract, and run the original as it was.

The server feeds one [N, 1] input per feature (float64 for numbers, strings for categories) and
reads, for regression, one value per row, and for classification a label tensor followed by a
[N, classes] float32 probability tensor (codec.py, predictor.py). Models from converters and other
tools often take one [N, features] matrix, emit probabilities as ZipMap's list of dicts, or use
float64: rather than teaching the server every shape, the graph is wrapped here once, with a few
standard operators in front (Concat, Cast) and behind (Cast, Reshape, ArgMax), so that every
artifact, trained or imported, is served by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnx.numpy_helper
import pandas as pd
from onnx import TensorProto, helper

from modelship.build.training.double_inputs import feed_numbers_in_double, fresh_name, names_in
from modelship.contracts.card import FeatureKind, Task
from modelship.errors import ModelImportError

_NUMERIC_ELEMS: dict[int, Any] = {
    TensorProto.FLOAT: np.float32,
    TensorProto.DOUBLE: np.float64,
    TensorProto.INT64: np.int64,
    TensorProto.INT32: np.int32,
}
_ELEM_NAMES: dict[int, str] = {
    TensorProto.FLOAT: "tensor(float)",
    TensorProto.DOUBLE: "tensor(double)",
    TensorProto.INT64: "tensor(int64)",
    TensorProto.INT32: "tensor(int32)",
    TensorProto.STRING: "tensor(string)",
}
_LABEL_ELEMS = (TensorProto.INT64, TensorProto.STRING)
_CLASS_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")
# Used only where the model has no default-domain opset yet (ai.onnx.ml-only converter output).
_DEFAULT_OPSET = 13


@dataclass(frozen=True)
class _Value:
    name: str
    elem: int | None  # tensor element type, None for sequences and maps
    dims: list[int | None]
    is_sequence_of_maps: bool = False

    @property
    def type_name(self) -> str:
        if self.is_sequence_of_maps:
            return "seq(map)"
        if self.elem is None:
            return "a non-tensor type"
        shape = ", ".join("N" if d is None else str(d) for d in self.dims)
        return f"{_ELEM_NAMES.get(self.elem, f'tensor(type {self.elem})')} [{shape}]"


def _value(info: onnx.ValueInfoProto) -> _Value:
    kind = info.type.WhichOneof("value")
    if kind == "tensor_type":
        tensor = info.type.tensor_type
        dims: list[int | None] = [
            d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
        ]
        return _Value(info.name, tensor.elem_type, dims)
    if kind == "sequence_type" and info.type.sequence_type.elem_type.HasField("map_type"):
        return _Value(info.name, None, [], is_sequence_of_maps=True)
    return _Value(info.name, None, [])


@dataclass(frozen=True)
class _Feed:
    """One input of the original graph and the sample columns it takes."""

    input: str
    columns: list[str]
    dtype: Any


@dataclass(frozen=True)
class ServingGraph:
    """The rewritten model plus what the card needs, and how to run the original for parity."""

    model: onnx.ModelProto
    input_names: dict[str, str]
    kinds: dict[str, FeatureKind]
    task: Task
    classes: list[str] | None
    feeds: list[_Feed]
    label_output: str | None
    value_output: str
    value_is_map: bool


def adapt(
    model: onnx.ModelProto,
    features: list[str],
    kinds: dict[str, FeatureKind],
    input_map: dict[str, str],
    task: Task | None,
) -> ServingGraph:
    """The model rewritten for the server; refused with the mismatch named if it cannot be."""
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    graph = model_copy.graph
    taken = names_in(graph)
    initializers = {i.name for i in graph.initializer}
    inputs = [_value(i) for i in graph.input if i.name not in initializers]
    feeds, new_inputs, pre_nodes, served, kinds = _inputs(inputs, features, kinds, input_map, taken)
    tail = _outputs(graph, task, taken)
    original = tail.original
    nodes = list(graph.node)
    if original.zipmap is not None:
        nodes.remove(original.zipmap)
    kept_inputs = [i for i in graph.input if i.name in initializers or i.name in served.values()]
    del graph.input[:]
    graph.input.extend([*kept_inputs, *new_inputs])
    del graph.node[:]
    graph.node.extend([*pre_nodes, *nodes, *tail.nodes])
    del graph.output[:]
    graph.output.extend(tail.outputs)
    graph.initializer.extend(tail.constants)
    if (pre_nodes or tail.nodes) and not any(
        o.domain in ("", "ai.onnx") for o in model_copy.opset_import
    ):
        model_copy.opset_import.append(helper.make_opsetid("", _DEFAULT_OPSET))
        model_copy.ir_version = max(model_copy.ir_version, 7)
    feed_numbers_in_double(model_copy, [served[c] for c in served if kinds[c] == "numeric"])
    try:
        onnx.checker.check_model(model_copy)
    except onnx.checker.ValidationError as exc:
        raise ModelImportError(f"the ONNX model is not valid: {str(exc).splitlines()[0]}") from exc
    return ServingGraph(
        model=model_copy,
        input_names=served,
        kinds=kinds,
        task=tail.task,
        classes=tail.classes,
        feeds=feeds,
        label_output=original.label,
        value_output=original.value,
        value_is_map=original.zipmap is not None,
    )


def _inputs(
    inputs: list[_Value],
    features: list[str],
    kinds: dict[str, FeatureKind],
    input_map: dict[str, str],
    taken: set[str],
) -> tuple[
    list[_Feed],
    list[onnx.ValueInfoProto],
    list[onnx.NodeProto],
    dict[str, str],
    dict[str, FeatureKind],
]:
    by_name = {i.name: i for i in inputs}
    unknown_columns = [c for c in input_map if c not in features]
    unknown_inputs = [n for n in input_map.values() if n not in by_name]
    if unknown_columns or unknown_inputs:
        raise ModelImportError(
            "--input-map names "
            + "; ".join(
                part
                for part in (
                    f"column(s) {', '.join(unknown_columns)} not in the sample"
                    if unknown_columns
                    else "",
                    f"input(s) {', '.join(unknown_inputs)} the ONNX model does not have "
                    f"(it has: {', '.join(by_name)})"
                    if unknown_inputs
                    else "",
                )
                if part
            )
        )
    mapping = dict(input_map)
    for column in features:
        if column not in mapping and column in by_name and column not in mapping.values():
            mapping[column] = column
    if not mapping and len(inputs) == 1 and len(inputs[0].dims) == 2:
        return _matrix_input(inputs[0], features, kinds, taken)
    unmapped_inputs = [i.name for i in inputs if i.name not in mapping.values()]
    unmapped_columns = [c for c in features if c not in mapping]
    if unmapped_inputs or unmapped_columns:
        raise ModelImportError(
            f"the ONNX inputs do not match the sample's columns: inputs without a column: "
            f"{', '.join(unmapped_inputs) or 'none'}; columns without an input: "
            f"{', '.join(unmapped_columns) or 'none'}; map them with --input-map COLUMN=INPUT,... "
            "or drop extra columns from the sample"
        )
    feeds, new_inputs, nodes, served = [], [], [], {}
    decided: dict[str, FeatureKind] = {}
    for column in features:
        value = by_name[mapping[column]]
        if len(value.dims) != 2 or value.dims[1] not in (None, 1):
            raise ModelImportError(
                f"ONNX input {value.name} (for column {column}) is {value.type_name}: "
                "modelship feeds one [N, 1] tensor per column"
            )
        if value.elem == TensorProto.STRING:
            decided[column] = "categorical"
            feeds.append(_Feed(value.name, [column], object))
            served[column] = value.name
            continue
        if value.elem not in _NUMERIC_ELEMS:
            raise ModelImportError(
                f"ONNX input {value.name} (for column {column}) is {value.type_name}: supported "
                "input types are float, double, int64, int32 and string tensors"
            )
        if kinds[column] == "categorical":
            raise ModelImportError(
                f"column {column} holds text in the sample but ONNX input {value.name} takes "
                f"{value.type_name}"
            )
        decided[column] = "numeric"
        feeds.append(_Feed(value.name, [column], _NUMERIC_ELEMS[value.elem]))
        if value.elem == TensorProto.FLOAT:
            served[column] = value.name
            continue
        name = fresh_name(column, taken)
        served[column] = name
        new_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
        nodes.append(helper.make_node("Cast", [name], [value.name], to=value.elem))
    return feeds, new_inputs, nodes, served, decided


def _matrix_input(
    value: _Value, features: list[str], kinds: dict[str, FeatureKind], taken: set[str]
) -> tuple[
    list[_Feed],
    list[onnx.ValueInfoProto],
    list[onnx.NodeProto],
    dict[str, str],
    dict[str, FeatureKind],
]:
    """One [N, features] input: the features, in the sample's order, concatenated in the graph."""
    if value.elem not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        raise ModelImportError(
            f"the ONNX model's single input {value.name} is {value.type_name}: a matrix input "
            "must be float or double"
        )
    width = value.dims[1]
    if width is not None and width != len(features):
        raise ModelImportError(
            f"the ONNX model's input {value.name} takes {width} features but the sample has "
            f"{len(features)} feature columns ({', '.join(features)})"
        )
    text = [c for c in features if kinds[c] == "categorical"]
    if text:
        raise ModelImportError(
            f"the ONNX model's input {value.name} takes numbers only, but column(s) "
            f"{', '.join(text)} hold text in the sample"
        )
    served = {column: fresh_name(column, taken) for column in features}
    new_inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])
        for name in served.values()
    ]
    joined = (
        value.name if value.elem == TensorProto.FLOAT else fresh_name(f"{value.name}_float", taken)
    )
    nodes = [helper.make_node("Concat", list(served.values()), [joined], axis=1)]
    if value.elem == TensorProto.DOUBLE:
        nodes.append(helper.make_node("Cast", [joined], [value.name], to=TensorProto.DOUBLE))
    feed = _Feed(value.name, features, _NUMERIC_ELEMS[value.elem])
    return [feed], new_inputs, nodes, served, dict.fromkeys(features, "numeric")


@dataclass(frozen=True)
class _Original:
    label: str | None
    value: str  # the regression output, or the probabilities (a tensor or ZipMap's output)
    zipmap: onnx.NodeProto | None


@dataclass
class _Tail:
    """The served outputs and the nodes and constants added behind the original graph."""

    task: Task
    outputs: list[onnx.ValueInfoProto]
    original: _Original
    classes: list[str] | None = None
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    constants: list[onnx.TensorProto] = field(default_factory=list)


def _outputs(graph: onnx.GraphProto, task: Task | None, taken: set[str]) -> _Tail:
    outputs = [_value(o) for o in graph.output]
    probabilities = [
        o
        for o in outputs
        if o.is_sequence_of_maps
        or (
            o.elem in (TensorProto.FLOAT, TensorProto.DOUBLE)
            and len(o.dims) == 2
            and o.dims[1] != 1
        )
    ]
    classes = _class_labels(graph)
    listing = "; ".join(f"{o.name} {o.type_name}" for o in outputs)
    if task is None:
        task = "classification" if probabilities or classes else "regression"
    if task == "regression":
        return _regression_output(outputs, listing, taken)
    return _classification_outputs(
        graph, outputs, probabilities, classes, listing=listing, taken=taken
    )


def _regression_output(outputs: list[_Value], listing: str, taken: set[str]) -> _Tail:
    numbers = [o for o in outputs if o.elem in (TensorProto.FLOAT, TensorProto.DOUBLE)]
    if len(numbers) != 1 or (numbers[0].dims[1:] not in ([], [1], [None])):
        raise ModelImportError(
            f"a regression model needs one numeric output with one value per row; this "
            f"ONNX model's outputs are: {listing}"
        )
    value = numbers[0]
    name = value.name
    nodes = []
    if value.elem == TensorProto.DOUBLE:
        name = fresh_name("variable", taken)
        nodes.append(helper.make_node("Cast", [value.name], [name], to=TensorProto.FLOAT))
    served = helper.make_tensor_value_info(name, TensorProto.FLOAT, value.dims or [None])
    return _Tail("regression", [served], _Original(None, value.name, None), nodes=nodes)


def _classification_outputs(
    graph: onnx.GraphProto,
    outputs: list[_Value],
    probabilities: list[_Value],
    classes: list[str] | None,
    *,
    listing: str,
    taken: set[str],
) -> _Tail:
    producers = {out: node for node in graph.node for out in node.output}
    if len(probabilities) != 1:
        raise ModelImportError(
            "a classification model needs one probability output ([N, classes] tensor or "
            f"ZipMap's seq(map)); this ONNX model's outputs are: {listing}"
        )
    labels = [o for o in outputs if o.elem in _LABEL_ELEMS and o.dims[1:] in ([], [1])]
    if len(labels) > 1:
        raise ModelImportError(
            f"a classification model needs at most one label output; this ONNX model's outputs "
            f"are: {listing}"
        )
    if not classes and labels:
        classes = _classes_behind(graph, labels[0].name)
    if not classes:
        raise ModelImportError(
            "cannot tell which class each probability belongs to: the ONNX model names no class "
            f"labels (ZipMap or an ai.onnx.ml classifier's classlabels_*); outputs: {listing}"
        )
    prob = probabilities[0]
    zipmap = producers.get(prob.name) if prob.is_sequence_of_maps else None
    if prob.is_sequence_of_maps and (zipmap is None or zipmap.op_type != "ZipMap"):
        raise ModelImportError(
            f"output {prob.name} is a seq(map) not made by ZipMap: its probabilities cannot be "
            "read as a tensor"
        )
    nodes: list[onnx.NodeProto] = []
    constants: list[onnx.TensorProto] = []
    tensor = zipmap.input[0] if zipmap is not None else prob.name
    is_double = prob.elem == TensorProto.DOUBLE
    if is_double:
        cast = fresh_name("probabilities", taken)
        nodes.append(helper.make_node("Cast", [tensor], [cast], to=TensorProto.FLOAT))
        tensor = cast
    if labels:
        label = labels[0]
        label_name = label.name
        label_elem = label.elem
        if len(label.dims) == 2:
            flat = fresh_name(f"{label.name}_flat", taken)
            shape = fresh_name("flat_shape", taken)
            constants.append(helper.make_tensor(shape, TensorProto.INT64, [1], [-1]))
            nodes.append(helper.make_node("Reshape", [label.name, shape], [flat]))
            label_name = flat
    else:
        label_name, label_elem = _label_from_probabilities(
            tensor, classes, graph, nodes=nodes, constants=constants, taken=taken
        )
    assert label_elem is not None
    served = [
        helper.make_tensor_value_info(label_name, label_elem, [None]),
        helper.make_tensor_value_info(tensor, TensorProto.FLOAT, [None, len(classes)]),
    ]
    original = _Original(labels[0].name if labels else None, prob.name, zipmap)
    return _Tail("classification", served, original, classes, nodes, constants)


def _label_from_probabilities(
    probabilities: str,
    classes: list[str],
    graph: onnx.GraphProto,
    *,
    nodes: list[onnx.NodeProto],
    constants: list[onnx.TensorProto],
    taken: set[str],
) -> tuple[str, int]:
    """Some tools emit only probabilities: the label is the class with the highest one."""
    numeric = _classes_are_integers(graph)
    table = fresh_name("class_labels", taken)
    values: list[Any] = [int(c) for c in classes] if numeric else [c.encode() for c in classes]
    elem = TensorProto.INT64 if numeric else TensorProto.STRING
    constants.append(helper.make_tensor(table, elem, [len(classes)], values))
    index = fresh_name("label_index", taken)
    label = fresh_name("label", taken)
    nodes.append(helper.make_node("ArgMax", [probabilities], [index], axis=1, keepdims=0))
    nodes.append(helper.make_node("Gather", [table, index], [label], axis=0))
    return label, TensorProto.INT64 if numeric else TensorProto.STRING


def _classifier_attribute(graph: onnx.GraphProto) -> onnx.AttributeProto | None:
    """The class labels a ZipMap or an ai.onnx.ml classifier declares (ZipMap first)."""
    ordered = sorted(graph.node, key=lambda n: n.op_type != "ZipMap")
    for node in ordered:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES and (attribute.ints or attribute.strings):
                found: onnx.AttributeProto = attribute
                return found
    return None


def _class_labels(graph: onnx.GraphProto) -> list[str] | None:
    attribute = _classifier_attribute(graph)
    if attribute is None:
        return None
    if attribute.strings:
        return [s.decode() for s in attribute.strings]
    return [str(i) for i in attribute.ints]


def _classes_behind(graph: onnx.GraphProto, label: str) -> list[str] | None:
    """Graphs of plain operators pick the label from a constant table of classes (Gather or
    ArrayFeatureExtractor on the argmax): follow the label back to that table."""
    producers = {out: node for node in graph.node for out in node.output}
    tables = {t.name: t for t in graph.initializer}
    pending, seen = [label], set()
    while pending:
        name = pending.pop()
        node = producers.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type in ("Gather", "ArrayFeatureExtractor") and node.input[0] in tables:
            values = onnx.numpy_helper.to_array(tables[node.input[0]]).reshape(-1)
            return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]
        pending.extend(node.input)
    return None


def _classes_are_integers(graph: onnx.GraphProto) -> bool:
    attribute = _classifier_attribute(graph)
    return attribute is not None and not attribute.strings


class OriginalOnnx:
    """The ONNX file as the user gave it, run on the sample in its own input format."""

    def __init__(self, data: bytes, serving: ServingGraph) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self._serving = serving

    def _run(self, frame: pd.DataFrame, output: str) -> Any:
        feeds = {
            feed.input: frame[feed.columns].to_numpy(dtype=feed.dtype)
            for feed in self._serving.feeds
        }
        return self._session.run([output], feeds)[0]

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[Any]:
        serving = self._serving
        if serving.task == "regression":
            return np.asarray(self._run(frame, serving.value_output)).reshape(-1)
        if serving.label_output is not None:
            return np.asarray(self._run(frame, serving.label_output)).reshape(-1)
        assert serving.classes is not None
        labels: npt.NDArray[Any] = np.asarray(serving.classes)
        chosen: npt.NDArray[Any] = labels[self.predict_proba(frame).argmax(axis=1)]
        return chosen

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        serving = self._serving
        raw = self._run(frame, serving.value_output)
        if not serving.value_is_map:
            return np.asarray(raw, dtype=np.float64)
        assert serving.classes is not None
        # ZipMap's keys are the class labels, as int64 or as strings.
        return np.array(
            [[row[_key(row, label)] for label in serving.classes] for row in raw], dtype=np.float64
        )


def _key(row: dict[Any, float], label: str) -> Any:
    return label if label in row else int(label)


def text_labels(onnx_bytes: bytes) -> bytes:
    """Class labels as text, as in trained models (whose card lists classes as strings): an
    int64 label output gets a Cast to string at the end of the graph."""
    model = onnx.load_model_from_string(onnx_bytes)
    label = model.graph.output[0]
    if label.type.tensor_type.elem_type != TensorProto.INT64:
        return onnx_bytes
    taken = names_in(model.graph)
    text = fresh_name(f"{label.name}_text", taken)
    model.graph.node.append(helper.make_node("Cast", [label.name], [text], to=TensorProto.STRING))
    dims = [d.dim_value or None for d in label.type.tensor_type.shape.dim]
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(text, TensorProto.STRING, dims))
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", _DEFAULT_OPSET))
        model.ir_version = max(model.ir_version, 7)
    return bytes(model.SerializeToString())
