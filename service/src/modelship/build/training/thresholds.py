"""Split thresholds that decide as the source model does: the source's float64 values, compared
with the float64 input.

scikit-learn's histogram gradient boosting and LightGBM compare each float64 input with a
float64 threshold. Their converters write float32 thresholds (the nearest float32) behind a
Cast(float) of the input: an input a float32 cannot tell from the threshold then goes the
other way than in the source model, and no float32 threshold decides as the source for every
float64 input (one strictly between the threshold and the float32 value either side is
rounded onto it). So their tree operator is rewritten to hold the source model's own float64
thresholds (`nodes_values_as_tensor`, ai.onnx.ml version 3) and to take its features in
float64 (`feed_in_double`: the numbers as the user sent them, or as the imputer and scaler left
them in float64, with one-hot columns widened exactly): onnxruntime then compares exactly what
the source model compares, missing values included (`nodes_missing_value_tracks_true` holds for
float64 inputs too). Its leaf weights stay float32, as the converters wrote them.

skl2onnx already exports the thresholds of its other scikit-learn trees exactly (they cast to
float32 themselves, and skl2onnx writes each threshold as the largest float32 at or below it),
but not where their splits send a missing value: that is written here for decision trees and
forests (`_missing_as_source`). XGBoost's thresholds are float32 and its splits
`x < threshold`, so its export is exact as written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from modelship.build.explanation import (
    NotExplainable,
    booster_trees,
    matched_nodes,
    sklearn_trees,
)
from modelship.build.training.double_inputs import feed_in_double

_TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")
# The version of the ONNX-ML operators that added `nodes_values_as_tensor`.
_TENSOR_THRESHOLDS_OPSET = 3


def decide_as_source(model: onnx.ModelProto, estimator: Any, nan_reaches: bool = True) -> int:
    """Give a histogram gradient boosting or LightGBM model's tree operator the source's float64
    thresholds and a float64 input, and a decision tree's or forest's its missing-value sides
    (unless `nan_reaches` is False: an imputer in front means no NaN ever gets to the trees,
    and onnxruntime's check for one at every split costs CPU, docs/import.md), in place;
    returns how many float64 thresholds it wrote."""
    nodes = [n for n in model.graph.node if n.op_type in _TREE_OPS]
    if len(nodes) != 1:
        return 0
    tree = nodes[0]
    attributes = {a.name: a for a in tree.attribute}
    if "nodes_values" not in attributes:  # thresholds held as a tensor already
        return 0
    attrs = {name: helper.get_attribute_value(a) for name, a in attributes.items()}
    if nan_reaches:
        _missing_as_source(tree, attrs, estimator)
    source = source_thresholds(estimator, attrs)
    if source is None:
        return 0
    written = np.asarray(attrs["nodes_values"], dtype=np.float64)
    exact = np.where(np.isnan(source), written, source)  # leaves keep what they had (unused)
    tree.attribute.remove(attributes["nodes_values"])
    tree.attribute.append(
        helper.make_attribute("nodes_values_as_tensor", numpy_helper.from_array(exact))
    )
    for opset in model.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, _TENSOR_THRESHOLDS_OPSET)
    feed_in_double(model, tree)
    return int((~np.isnan(source)).sum())


def nan_can_reach_trees(pipeline: Any) -> bool:
    """Whether a missing number can get to the pipeline's last step: False only when every
    column passes an imputer of NaN (or a one-hot encoder, whose output is 0 or 1) first, as in
    the pipelines `modelship train` builds; True for a bare estimator or anything unsure."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    def clears_nan(step: Any) -> bool:
        if isinstance(step, Pipeline):
            return clears_nan(step.steps[0][1])
        if isinstance(step, OneHotEncoder) or step == "drop":
            return True
        return _imputes_nan(step)

    steps = pipeline.steps[:-1] if isinstance(pipeline, Pipeline) else []
    if not steps:
        return True
    first = steps[0][1]
    if isinstance(first, ColumnTransformer):
        return not all(clears_nan(t) for _, t, columns in first.transformers_ if len(columns))
    return not clears_nan(first)


def _imputes_nan(step: Any) -> bool:
    from sklearn.impute import SimpleImputer

    if not isinstance(step, SimpleImputer):
        return False
    fill = step.fill_value
    nan_filled = step.strategy == "constant" and isinstance(fill, float) and np.isnan(fill)
    missing = step.missing_values
    return isinstance(missing, float) and np.isnan(missing) and not nan_filled


def _missing_as_source(tree: onnx.NodeProto, attrs: dict[str, Any], estimator: Any) -> None:
    """Send a missing value down the side each split of a scikit-learn decision tree or forest
    learnt (`missing_go_to_left`, scikit-learn >= 1.4), in place.

    skl2onnx writes no missing-value branch, and onnxruntime then sends NaN to the false (right)
    side of every split: a pipeline that lets NaN reach its forest (no imputer) answered
    otherwise than scikit-learn on every row with a blank."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import BaseDecisionTree

    routed = (
        BaseDecisionTree
        | RandomForestRegressor
        | RandomForestClassifier
        | ExtraTreesRegressor
        | ExtraTreesClassifier
    )
    if not isinstance(estimator, routed):
        return
    tree_of = sklearn_trees(estimator)
    assert tree_of is not None
    left = [
        0 if mode == b"LEAF" else int(tree_of(t).missing_go_to_left[n])
        for t, n, mode in zip(
            attrs["nodes_treeids"], attrs["nodes_nodeids"], attrs["nodes_modes"], strict=True
        )
    ]
    if not any(left):  # every missing value goes right: as converted
        return
    for attribute in list(tree.attribute):
        if attribute.name == "nodes_missing_value_tracks_true":
            tree.attribute.remove(attribute)
    tree.attribute.append(helper.make_attribute("nodes_missing_value_tracks_true", left))


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
