"""Numeric inputs in float64, end to end: the graph takes the user's numbers as scikit-learn does.

A float32 input is a slightly different number (bmi 27.9 arrives as 27.899999618...): after a
scaler that difference can carry a row across a split of the trees, and the export then decides
otherwise than the original model, which scales the float64 value
(docs/import.md#where-parity-is-checked). So every numeric input is declared float64, kept in
float64 through the operators that only move or convert it (Concat, Cast: the scaler's
Cast(double) -> Sub -> Div -> Cast(float) then works on the exact value), and cast to float32 in
front of any other operator: there the graph computes exactly as it did with float32 inputs.
"""

from __future__ import annotations

import re
from typing import Any

import onnx
from onnx import TensorProto, helper


def feed_numbers_in_double(model: onnx.ModelProto, inputs: list[str]) -> None:
    """Declare `inputs` (float32 graph inputs) float64, exact up to where they are used."""
    graph = model.graph
    double = set(inputs)
    for value in graph.input:
        if value.name in double:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    taken = names_in(graph)
    as_float: dict[str, str] = {}  # a float64 tensor -> its float32 cast, made once
    nodes: list[onnx.NodeProto] = []
    rounded = _rounded_doubles(model, _doubles(model))
    for node in graph.node:
        if node.op_type == "Cast" and _attribute(node, "to") == TensorProto.DOUBLE:
            # Back to float64 after a cast to float32 (one operator's output to the next's
            # input, as between an imputer and a scaler): read the float64 value itself.
            node.input[0] = rounded.get(node.input[0], node.input[0])
        used = [name for name in node.input if name in double]
        if not used:
            nodes.append(node)
        elif node.op_type == "Cast":
            nodes.append(node)  # Cast takes any element type: it reads the exact value
        elif node.op_type == "Concat" and len(used) == len(node.input):
            nodes.append(node)
            double.add(node.output[0])
        else:
            for name in used:
                if name not in as_float:
                    cast = fresh_name(f"{name}_float", taken)
                    nodes.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT))
                    as_float[name] = cast
            node.input[:] = [as_float.get(name, name) for name in node.input]
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(_used(nodes, {o.name for o in graph.output}))
    # Shapes and types inferred for float32 are stale where the tensors are now float64.
    stale = [v for v in graph.value_info if v.name in double]
    for value in stale:
        graph.value_info.remove(value)


def feed_in_double(model: onnx.ModelProto, consumer: onnx.NodeProto) -> None:
    """Give `consumer` (an operator of the graph that takes float64 as well as float32) its
    first input in float64: the float64 value a float32 cast was made from, a Concat of its
    inputs in float64, or else the float32 value widened (exact)."""
    graph = model.graph
    doubles = _doubles(model)
    rounded = _rounded_doubles(model, doubles)
    producers = {out: node for node in graph.node for out in node.output}
    taken = names_in(graph)
    added: list[onnx.NodeProto] = []

    def widened(name: str) -> str:
        if name in doubles:
            return name
        if name in rounded:
            return rounded[name]
        producer = producers.get(name)
        out = fresh_name(f"{name}_double", taken)
        if producer is not None and producer.op_type == "Concat":
            parts = [widened(part) for part in producer.input]
            added.append(
                helper.make_node("Concat", parts, [out], axis=_attribute(producer, "axis"))
            )
        else:
            added.append(helper.make_node("Cast", [name], [out], to=TensorProto.DOUBLE))
        return out

    consumer.input[0] = widened(consumer.input[0])
    nodes = list(graph.node)
    at = next(i for i, node in enumerate(nodes) if node.output == consumer.output)
    del graph.node[:]
    graph.node.extend(_used([*nodes[:at], *added, *nodes[at:]], {o.name for o in graph.output}))


def _doubles(model: onnx.ModelProto) -> set[str]:
    """The graph's float64 tensors, as ONNX infers their types."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.DOUBLE}


def _rounded_doubles(model: onnx.ModelProto, doubles: set[str]) -> dict[str, str]:
    """Each float32 cast of a float64 tensor, to that tensor."""
    return {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type == "Cast"
        and _attribute(node, "to") == TensorProto.FLOAT
        and node.input[0] in doubles
    }


def _attribute(node: onnx.NodeProto, name: str) -> Any:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _used(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes the graph's outputs depend on, in order (casts bypassed above are dropped)."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    return kept[::-1]


def names_in(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name the graph uses."""
    names = {v.name for v in [*graph.input, *graph.output, *graph.value_info]}
    names |= {i.name for i in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def fresh_name(wanted: str, taken: set[str]) -> str:
    """A tensor name not used in the graph, close to `wanted` (and safe in HTML ids and URLs)."""
    base = re.sub(r"\W", "_", wanted) or "input"
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    taken.add(name)
    return name
