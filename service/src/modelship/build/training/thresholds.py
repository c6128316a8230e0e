"""Split thresholds that decide as the source model does, for every float32 input.

ONNX tree operators compare float32 features with float32 thresholds. scikit-learn's histogram
gradient boosting and LightGBM compare with float64 thresholds, which their converters round to
the nearest float32: when that rounds up, an input equal to the rounded value goes the other
way than in the source model. The largest float32 at or below the float64 threshold decides
`x <= threshold` the same way for every float32 x, so it replaces each such threshold here
(skl2onnx already does this for its other scikit-learn trees; XGBoost's thresholds are float32
and its splits `x < threshold`, so its export is exact as written).
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
    exact = np.where(leq, largest_float32_at_or_below(np.where(leq, source, 0.0)), current)
    changed = int((exact != current).sum())
    if changed:
        del attributes["nodes_values"].floats[:]
        attributes["nodes_values"].floats.extend(exact.tolist())
    return changed


def largest_float32_at_or_below(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    nearest = values.astype(np.float32)
    above = nearest.astype(np.float64) > values
    return np.where(above, np.nextafter(nearest, np.float32(-np.inf)), nearest)


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
