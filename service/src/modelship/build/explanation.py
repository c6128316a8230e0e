"""Record what exact explanations need in the artifact: `explanation.npz`.

The ONNX tree operators hold thresholds, children and leaf weights but not the node covers
(training samples per node) that path-dependent TreeSHAP weighs paths by: they are read here
from the source model, matched to the ONNX nodes by (tree, node) id. Also recorded: the features
graph (the ONNX graph cut at the trees' or linear model's input), and which input column each
of those features comes from. The serving side (model/explain.py) reads only these arrays.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pandas as pd
from onnx import helper

from modelship.contracts.card import ExplanationFiles, Task
from modelship.errors import ExportError
from modelship.model.explain import MODES

EXPLANATION_FILE = "explanation.npz"
_PROBE_ROWS = 2_000
_TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")
_LINEAR_OPS = ("LinearRegressor", "LinearClassifier")


@dataclass(frozen=True)
class Recorded:
    data: bytes
    method: str
    output_space: str


class NotExplainable(ExportError):
    """The model has no exact explanation here; training and import go on without one."""


def write(
    directory: Path,
    onnx_bytes: bytes,
    *,
    pipeline: Any,
    frame: pd.DataFrame,
    task: Task,
    classes: list[str] | None,
) -> ExplanationFiles:
    """Record the explanation file in `directory` (before the card), or say why there is none."""
    try:
        recorded = record(
            onnx_bytes,
            pipeline=pipeline,
            frame=frame,
            columns=list(frame.columns),
            task=task,
            classes=classes,
        )
    except NotExplainable as exc:
        return ExplanationFiles(method=None, unavailable=exc.message)
    return _saved(directory, recorded)


def _saved(directory: Path, recorded: Recorded) -> ExplanationFiles:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXPLANATION_FILE).write_bytes(recorded.data)
    return ExplanationFiles(
        method=recorded.method,
        file=EXPLANATION_FILE,
        sha256=hashlib.sha256(recorded.data).hexdigest(),
        output_space=recorded.output_space,
    )


# Background rows for interventional TreeSHAP: shap's own default for a background masker.
BACKGROUND_ROWS = 100


def write_interventional(
    directory: Path,
    onnx_bytes: bytes,
    *,
    frame: pd.DataFrame,
    feeds: Callable[[pd.DataFrame], dict[str, npt.NDArray[Any]]],
    task: Task,
    classes: list[str] | None,
) -> ExplanationFiles:
    """For a graph imported without its source model: interventional TreeSHAP against rows of
    the import sample, or why there is no exact explanation."""
    try:
        recorded = record_interventional(
            onnx_bytes, frame=frame, feeds=feeds, task=task, classes=classes
        )
    except NotExplainable as exc:
        return ExplanationFiles(method=None, unavailable=exc.message)
    return _saved(directory, recorded)


def record_interventional(
    onnx_bytes: bytes,
    *,
    frame: pd.DataFrame,
    feeds: Callable[[pd.DataFrame], dict[str, npt.NDArray[Any]]],
    task: Task,
    classes: list[str] | None,
) -> Recorded:
    """The ONNX trees, the background (sample rows as the trees see them) and column owners."""
    model = onnx.load_from_string(onnx_bytes)
    node = _final_node(model)
    if node.op_type not in _TREE_OPS:
        raise NotExplainable(
            f"no exact explanation for a {node.op_type} imported without its source model yet: "
            "import the scikit-learn pipeline it came from"
        )
    features = _features_graph(model, node.input[0])
    try:
        session = ort.InferenceSession(features, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for an unrunnable cut
        raise NotExplainable(
            f"no exact explanation: the graph in front of the trees cannot run alone ({exc})"
        ) from exc

    def transform(rows: pd.DataFrame) -> npt.NDArray[np.float64]:
        return np.asarray(session.run(None, feeds(rows))[0], dtype=np.float64)

    probe = frame.sample(min(len(frame), _PROBE_ROWS), random_state=0)
    background = frame.sample(min(len(frame), BACKGROUND_ROWS), random_state=1)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    arrays: dict[str, Any] = {
        "features_onnx": np.frombuffer(features, dtype=np.uint8),
        "column_of_feature": _column_of(transform, probe),
        "background": transform(background),
        "method": "interventional TreeSHAP",
        "output_space": _output_space(_post_transform(attrs), task, node.op_type, classes),
    }
    arrays |= _trees(attrs, node.op_type, None, task, classes)
    return _packed(arrays)


def record(
    onnx_bytes: bytes,
    *,
    pipeline: Any,
    frame: pd.DataFrame,
    columns: list[str],
    task: Task,
    classes: list[str] | None,
) -> Recorded:
    """The explanation data of a fitted scikit-learn pipeline (or bare estimator) and its export."""
    from sklearn.pipeline import Pipeline

    model = onnx.load_from_string(onnx_bytes)
    steps = pipeline.steps if isinstance(pipeline, Pipeline) else [("model", pipeline)]
    estimator = steps[-1][1]
    prefix = Pipeline(steps[:-1]) if len(steps) > 1 else None
    transformed = _transform(prefix, frame[columns])
    node = _final_node(model)
    # A sample shows which column each feature moves with as well as every row, for less time.
    probe = frame[columns].sample(min(len(frame), _PROBE_ROWS), random_state=0)
    column_of = (
        np.arange(transformed.shape[1], dtype=np.intp)
        if prefix is None
        else _column_of(lambda rows: _transform(prefix, rows), probe)
    )
    arrays: dict[str, Any] = {
        "features_onnx": np.frombuffer(_features_graph(model, node.input[0]), dtype=np.uint8),
        "column_of_feature": column_of,
    }
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in _TREE_OPS:
        arrays |= _trees(attrs, node.op_type, estimator, task, classes)
        arrays["method"] = "path-dependent TreeSHAP"
    else:
        arrays |= _linear(estimator, transformed, task, classes)
        arrays["method"] = "linear"
    arrays["output_space"] = _output_space(_post_transform(attrs), task, node.op_type, classes)
    return _packed(arrays)


def _post_transform(attrs: dict[str, Any]) -> str:
    post = attrs.get("post_transform", b"NONE")
    return str(post, "ascii") if isinstance(post, bytes) else "NONE"


def _packed(arrays: dict[str, Any]) -> Recorded:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return Recorded(
        data=buffer.getvalue(),
        method=str(arrays["method"]),
        output_space=str(arrays["output_space"]),
    )


def _transform(prefix: Any, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    values = frame.to_numpy() if prefix is None else prefix.transform(frame)
    return np.asarray(values, dtype=np.float64)


def _final_node(model: onnx.ModelProto) -> onnx.NodeProto:
    found = [n for n in model.graph.node if n.op_type in (*_TREE_OPS, *_LINEAR_OPS)]
    if len(found) != 1:
        kinds = sorted({n.op_type for n in model.graph.node})
        raise NotExplainable(
            "no exact explanation for this graph: it needs exactly one tree ensemble or linear "
            f"operator, and has {len(found)} (operators: {', '.join(kinds)})"
        )
    node: onnx.NodeProto = found[0]
    return node


def _features_graph(model: onnx.ModelProto, features: str) -> bytes:
    """The graph cut at `features`: only the nodes that tensor depends on, and it as output."""
    needed, kept = {features}, []
    for node in reversed(model.graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    del cut.graph.node[:]
    cut.graph.node.extend(reversed(kept))
    del cut.graph.output[:]
    # The trees' input: float32, or float64 where the trees compare float64 (thresholds.py).
    inferred = onnx.shape_inference.infer_shapes(model).graph
    elem = next(
        (
            v.type.tensor_type.elem_type
            for v in [*inferred.input, *inferred.value_info]
            if v.name == features
        ),
        onnx.TensorProto.FLOAT,
    )
    cut.graph.output.append(helper.make_tensor_value_info(features, elem, None))
    kept_initializers = [i for i in model.graph.initializer if i.name in needed]
    del cut.graph.initializer[:]
    cut.graph.initializer.extend(kept_initializers)
    return bytes(cut.SerializeToString())


def _column_of(
    transform: Callable[[pd.DataFrame], npt.NDArray[np.float64]], frame: pd.DataFrame
) -> npt.NDArray[np.intp]:
    """Which input column each model feature derives from, by changing one column at a time."""
    transformed = transform(frame)
    owner = np.full(transformed.shape[1], -1, dtype=np.intp)
    rng = np.random.default_rng(0)
    for c, name in enumerate(frame.columns):
        changed = frame.copy()
        changed[name] = frame[name].to_numpy()[rng.permutation(len(frame))]
        moved = ~np.isclose(transform(changed), transformed, equal_nan=True).all(axis=0)
        clash = moved & (owner >= 0)
        if clash.any():
            raise NotExplainable(
                f"no exact explanation per column: a model feature combines {name} with "
                f"{frame.columns[owner[np.argmax(clash)]]} (e.g. polynomial features)"
            )
        owner[moved] = c
    # A feature no column moves is constant on the sample: it cannot split, so it adds nothing.
    owner[owner < 0] = 0
    return owner


def _trees(
    attrs: dict[str, Any], op: str, estimator: Any, task: Task, classes: list[str] | None
) -> dict[str, Any]:
    modes = {m for m in attrs["nodes_modes"] if m != b"LEAF"}
    if len(modes) > 1 or not modes <= {b"BRANCH_LEQ", b"BRANCH_LT"}:
        raise NotExplainable(f"no exact explanation for split modes {sorted(modes)}")
    if attrs.get("aggregate_function", b"SUM") != b"SUM":
        raise NotExplainable("no exact explanation for a tree ensemble that does not add")
    prefix = "target" if op == "TreeEnsembleRegressor" else "class"
    # float32 as converted, or the float64 thresholds of histogram boosting and LightGBM
    # (build/training/thresholds.py): kept as the graph holds them, compared in float64.
    thresholds = (
        onnx.numpy_helper.to_array(attrs["nodes_values_as_tensor"])
        if "nodes_values_as_tensor" in attrs
        else np.asarray(attrs["nodes_values"], dtype=np.float32)
    )
    tree_ids = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    targets = np.asarray(attrs[f"{prefix}_ids"], dtype=np.int64)
    outputs = int(targets.max()) + 1
    base = attrs.get("base_values") or [0.0] * outputs
    return {
        "mode": MODES[next(iter(modes)).decode() if modes else "BRANCH_LEQ"],
        "tree_ids": tree_ids,
        "node_ids": node_ids,
        "features": np.asarray(attrs["nodes_featureids"], dtype=np.int64),
        "modes": np.array([MODES[m.decode()] for m in attrs["nodes_modes"]], dtype=np.int8),
        "thresholds": thresholds,
        "true_ids": np.asarray(attrs["nodes_truenodeids"], dtype=np.int64),
        "false_ids": np.asarray(attrs["nodes_falsenodeids"], dtype=np.int64),
        "missing_true": np.asarray(
            attrs.get("nodes_missing_value_tracks_true") or [0] * len(tree_ids), dtype=np.int8
        ),
        # Interventional TreeSHAP (no source model) weighs paths by its background instead.
        "covers": np.ones(len(tree_ids)) if estimator is None else _covers(estimator, attrs),
        "leaf_tree_ids": np.asarray(attrs[f"{prefix}_treeids"], dtype=np.int64),
        "leaf_node_ids": np.asarray(attrs[f"{prefix}_nodeids"], dtype=np.int64),
        "leaf_targets": targets,
        "leaf_weights": np.asarray(attrs[f"{prefix}_weights"], dtype=np.float64),
        "outputs": outputs,
        "base_values": np.asarray(base, dtype=np.float64),
        "output_names": _output_names(task, classes, outputs),
    }


def _covers(estimator: Any, attrs: dict[str, Any]) -> npt.NDArray[np.float64]:
    """Training samples per ONNX node, from the source model's trees."""
    tree_ids = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    boosted = booster_trees(estimator)
    if boosted is not None:
        return np.array([n.cover for n in matched_nodes(boosted, attrs)], dtype=np.float64)
    per_tree = _cover_source(estimator)
    cache: dict[int, npt.NDArray[np.float64]] = {}
    out = np.empty(len(tree_ids))
    for i, (tree, node) in enumerate(zip(tree_ids, node_ids, strict=True)):
        if int(tree) not in cache:
            cache[int(tree)] = np.asarray(per_tree(int(tree)), dtype=np.float64)
        out[i] = cache[int(tree)][int(node)]
    return out


def _cover_source(estimator: Any) -> Callable[[int], Any]:
    """scikit-learn's trees, numbered as skl2onnx numbers them (tree per stage and class)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        # Exact since the export decides its splits as scikit-learn does (thresholds.py).
        per_stage = len(estimator._predictors[0])
        return lambda t: estimator._predictors[t // per_stage][t % per_stage].nodes["count"]
    tree = sklearn_trees(estimator)
    if tree is not None:
        return lambda t: tree(t).weighted_n_node_samples
    raise NotExplainable(
        f"no exact explanation for {type(estimator).__name__}: its node covers are not known"
    )


def sklearn_trees(estimator: Any) -> Callable[[int], Any] | None:
    """The `tree_` of each tree of a scikit-learn decision tree, gradient boosting or forest,
    by its number in skl2onnx's export (tree per stage and class); None for other models."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.tree import BaseDecisionTree

    if isinstance(estimator, BaseDecisionTree):
        return lambda t: estimator.tree_
    if isinstance(estimator, GradientBoostingRegressor | GradientBoostingClassifier):
        per_stage = estimator.estimators_.shape[1]
        return lambda t: estimator.estimators_[t // per_stage][t % per_stage].tree_
    if hasattr(estimator, "estimators_") and hasattr(estimator.estimators_[0], "tree_"):
        return lambda t: estimator.estimators_[t].tree_
    return None


@dataclass(frozen=True)
class SourceNode:
    """A node of the source model's tree: its cover and (for a split) its own threshold."""

    cover: float
    left: SourceNode | None = None  # the branch ONNX takes when the test holds (true)
    right: SourceNode | None = None
    threshold: float = float("nan")


def booster_trees(estimator: Any) -> list[SourceNode] | None:
    """LightGBM's and XGBoost's trees with their covers, in the order the converters write."""
    lightgbm = getattr(estimator, "booster_", estimator)  # its scikit-learn API or a Booster
    if hasattr(lightgbm, "dump_model"):
        return [
            _lightgbm_node(info["tree_structure"]) for info in lightgbm.dump_model()["tree_info"]
        ]
    if hasattr(estimator, "get_booster"):  # XGBoost's
        import json

        dumps = estimator.get_booster().get_dump(dump_format="json", with_stats=True)
        return [_xgboost_node(json.loads(d)) for d in dumps]
    return None


def _lightgbm_node(node: dict[str, Any]) -> SourceNode:
    if "leaf_value" in node:
        return SourceNode(float(node.get("leaf_count", 0)))
    threshold = node["threshold"]
    return SourceNode(
        float(node["internal_count"]),
        _lightgbm_node(node["left_child"]),
        _lightgbm_node(node["right_child"]),
        # A categorical split's threshold is text ("1||3"); only numeric ones are compared.
        float(threshold) if node.get("decision_type") == "<=" else float("nan"),
    )


def _xgboost_node(node: dict[str, Any]) -> SourceNode:
    if "leaf" in node:
        return SourceNode(float(node["cover"]))
    children = {c["nodeid"]: c for c in node["children"]}
    return SourceNode(
        float(node["cover"]),
        _xgboost_node(children[node["yes"]]),
        _xgboost_node(children[node["no"]]),
    )


def matched_nodes(trees: list[SourceNode], attrs: dict[str, Any]) -> list[SourceNode]:
    """Walk each ONNX tree and its source tree together (true child with the left/yes one):
    the source node of every ONNX node, in the ONNX attributes' order."""
    tree_ids = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    position = {
        (int(t), int(n)): i for i, (t, n) in enumerate(zip(tree_ids, node_ids, strict=True))
    }
    modes = attrs["nodes_modes"]
    true_ids, false_ids = attrs["nodes_truenodeids"], attrs["nodes_falsenodeids"]
    out: list[SourceNode | None] = [None] * len(tree_ids)
    onnx_trees = sorted({int(t) for t in tree_ids})
    if len(onnx_trees) != len(trees):
        raise NotExplainable(
            f"no exact explanation: the ONNX graph has {len(onnx_trees)} trees, the source model "
            f"{len(trees)}"
        )
    rows_of: dict[int, list[int]] = {}
    for i, tree in enumerate(tree_ids):
        rows_of.setdefault(int(tree), []).append(i)
    for tree, source in zip(onnx_trees, trees, strict=True):
        mine = rows_of[tree]
        children = {
            int(ids[i]) for i in mine if modes[i] != b"LEAF" for ids in (true_ids, false_ids)
        }
        root = next(int(node_ids[i]) for i in mine if int(node_ids[i]) not in children)
        stack = [(root, source)]
        while stack:
            node, mirror = stack.pop()
            i = position[(tree, node)]
            out[i] = mirror
            if modes[i] == b"LEAF" and mirror.left is None:
                continue
            if modes[i] == b"LEAF" or mirror.left is None or mirror.right is None:
                raise NotExplainable(
                    f"no exact explanation: tree {tree} of the ONNX graph does not have the shape "
                    "of the source model's"
                )
            stack.append((int(true_ids[i]), mirror.left))
            stack.append((int(false_ids[i]), mirror.right))
    found = [node for node in out if node is not None]
    if len(found) != len(out):
        raise NotExplainable(
            "no exact explanation: some nodes of the ONNX graph are on no path of its trees"
        )
    return found


def _linear(
    estimator: Any,
    transformed: npt.NDArray[np.float64],
    task: Task,
    classes: list[str] | None,
) -> dict[str, Any]:
    coef = np.atleast_2d(np.asarray(getattr(estimator, "coef_", None), dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64))
    if coef.ndim != 2 or coef.shape[1] != transformed.shape[1]:
        raise NotExplainable(f"no exact explanation for {type(estimator).__name__}")
    return {
        "coef": coef.T,
        "intercept": intercept,
        "means": transformed.mean(axis=0),
        "output_names": _output_names(task, classes, coef.shape[0]),
    }


def _output_names(task: Task, classes: list[str] | None, outputs: int) -> list[str]:
    if task == "regression" or classes is None:
        return ["prediction"]
    if outputs == 1 and len(classes) == 2:
        return [classes[1]]
    return list(classes)


def _output_space(post: str, task: Task, op: str, classes: list[str] | None) -> str:
    if task == "regression":
        return "the prediction"
    if op in _LINEAR_OPS or post in ("LOGISTIC", "SOFTMAX"):
        return (
            "the log-odds of each class: probability = logistic(margin) for two classes, "
            "softmax over the classes' margins otherwise"
        )
    return "the probability of each class (the trees' average)"
