"""Split thresholds that decide as the source model does, for every float32 input.

ONNX tree operators compare float32 features with float32 thresholds. scikit-learn's histogram
gradient boosting and LightGBM compare with float64 thresholds, which their converters round to
the nearest float32, which can send an input the other way than the source model does.

The served input is itself a float32: the float64 value x the client sent, rounded to the nearest
float32 r(x). So the threshold to write is the float32 c for which `r(x) <= c` holds for the
same x as `x <= threshold`. `r(x) <= c` holds exactly up to the midpoint between c and the next
float32, so c is the smallest float32 whose midpoint with its successor is at or above the
threshold. That decides as the source model for every x that is a float32 (a threshold halfway
between two float32 values, or a float64 step or two above it as LightGBM writes them, goes to
the lower one) and for every x equal to the threshold (a
quantile threshold that is itself a data value, such as 30.59, goes to the float32 above it);
only an x strictly between the threshold and that midpoint, less than a float32 step, can still
go the other way. skl2onnx already exports its other scikit-learn trees exactly; XGBoost's
thresholds are float32 and its splits `x < threshold`, so its export is exact as written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper

from modelship.build.explanation import NotExplainable, booster_trees, matched_nodes

_TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")


def decide_as_source(model: onnx.ModelProto, estimator: Any) -> int:
    """Rewrite the tree operator's thresholds in place; returns how many changed."""
    nodes = [n for n in model.graph.node if n.op_type in _TREE_OPS]
    if len(nodes) != 1:
        return 0
    attributes = {a.name: a for a in nodes[0].attribute}
    if "nodes_values" not in attributes:  # thresholds held as a double tensor are exact already
        return 0
    attrs = {name: helper.get_attribute_value(a) for name, a in attributes.items()}
    source = source_thresholds(estimator, attrs)
    if source is None:
        return 0
    current = np.asarray(attrs["nodes_values"], dtype=np.float32)
    leq = np.array([m == b"BRANCH_LEQ" for m in attrs["nodes_modes"]]) & ~np.isnan(source)
    exact = np.where(leq, float32_deciding_as(np.where(leq, source, 0.0)), current)
    changed = int((exact != current).sum())
    if changed:
        del attributes["nodes_values"].floats[:]
        attributes["nodes_values"].floats.extend(exact.tolist())
    return changed


def float32_deciding_as(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """For each float64 threshold, the smallest float32 whose midpoint with the next float32 is
    at or above it (see the module's docstring)."""
    nearest = values.astype(np.float32)
    below = np.where(
        nearest.astype(np.float64) > values, np.nextafter(nearest, np.float32(-np.inf)), nearest
    )
    after = np.nextafter(below, np.float32(np.inf))
    midpoint = (below.astype(np.float64) + after.astype(np.float64)) / 2
    # LightGBM writes a split between two float32 values a hair (a float64 step or two) above
    # their midpoint: it is still meant as "between them", so it goes to the lower one.
    return np.where(midpoint >= values - 4 * np.spacing(values), below, after)


def source_thresholds(estimator: Any, attrs: dict[str, Any]) -> npt.NDArray[np.float64] | None:
    """Each ONNX node's float64 threshold in the source model (NaN for leaves), or None for
    models whose export needs no change."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        # skl2onnx numbers the trees stage by stage (one per class) and each node by its index.
        nodes = [tree.nodes for stage in estimator._predictors for tree in stage]
        return np.array(
            [
                np.nan if mode == b"LEAF" else float(nodes[t]["num_threshold"][n])
                for t, n, mode in zip(
                    attrs["nodes_treeids"],
                    attrs["nodes_nodeids"],
                    attrs["nodes_modes"],
                    strict=True,
                )
            ]
        )
    if hasattr(estimator, "booster_") or hasattr(estimator, "dump_model"):  # LightGBM
        boosted = booster_trees(estimator)
        assert boosted is not None
        try:
            return np.array([n.threshold for n in matched_nodes(boosted, attrs)])
        except NotExplainable:  # trees of another shape: left as converted, parity judges
            return None
    return None
