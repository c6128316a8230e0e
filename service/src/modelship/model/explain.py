"""Exact per-prediction explanations: Shapley values of tree ensembles and linear models.

Everything comes from the artifact's `explanation.npz` (plain arrays, loaded without pickle):
the trees exactly as the ONNX graph holds them (thresholds, children, leaf weights), the node
covers recorded from the source model at training or import time (ONNX tree operators carry
none), and a small ONNX graph that computes the features the trees or the linear model see.

Trees use path-dependent TreeSHAP (`shap.TreeExplainer`'s default): each leaf's path is
reduced, once at load, to one slot per distinct feature on it (the interval the feature must
fall in, where a missing value goes, and the share of training samples that went this way).
A row's Shapley values are then sums over leaves of polynomials in those slots, computed for
all rows and leaves at once with numpy. Linear models: coefficient x (value - training mean).
Contributions of derived features (one-hot columns, ...) are summed to the input column they
came from, so `base + sum(contributions) == prediction` in the space the model adds in.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelship.errors import ArtifactError

Method = Literal["path-dependent TreeSHAP", "interventional TreeSHAP", "linear"]
F64 = npt.NDArray[np.float64]

MODES = {"LEAF": 0, "BRANCH_LEQ": 1, "BRANCH_LT": 2}
# Elements per chunk of the (rows x leaves x slots) arrays: bounds memory on big batches.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Explanations:
    """`contributions[row, column, output]` per input column; `base[output]` is shared."""

    base: F64
    contributions: F64
    method: Method


@dataclass(frozen=True)
class _Group:
    """The leaves whose paths test the same number `d` of distinct features."""

    feature: npt.NDArray[np.intp]  # [leaves, d] index into the feature matrix
    # Per slot: (input column, the leaves whose slot's feature derives from it).
    by_column: list[list[tuple[int, npt.NDArray[np.intp]]]]
    low: F64  # [leaves, d] the interval a value must fall in (open/closed per mode)
    high: F64
    missing_ok: npt.NDArray[np.bool_]  # [leaves, d] whether a missing value follows the path
    share: F64  # [leaves, d] share of training samples the path's splits on it kept
    value: F64  # [leaves, outputs]
    weights: F64  # [d] Shapley weights |S|! (d - |S| - 1)! / d! for |S| = 0 .. d-1


class TreeShap:
    """Path-dependent TreeSHAP for one ensemble, with its per-leaf tables built at load."""

    def __init__(self, data: dict[str, Any], columns: int) -> None:
        self.columns = columns
        self.strict = int(data["mode"]) == MODES["BRANCH_LT"]
        self.outputs = int(data["outputs"])
        self.groups, expected, _ = _leaf_groups(data)
        self.base: F64 = np.asarray(data["base_values"], dtype=np.float64) + expected

    def __call__(self, x: F64) -> F64:
        rows = x.shape[0]
        phi = np.zeros((rows, self.columns, self.outputs))
        for group in self.groups:
            leaves, d = group.feature.shape
            step = max(1, _CHUNK_ELEMENTS // max(1, leaves * d * d))  # `held` is the largest
            for start in range(0, rows, step):
                phi[start : start + step] += self._group(x[start : start + step], group)
        return phi

    def _group(self, x: F64, g: _Group) -> F64:
        on = _follows(x, g, self.strict).astype(np.float64)
        rows, leaves, d = on.shape
        # Coefficients of P(z) = prod_j (share_j + on_j z): coefficient k sums the subsets of
        # k features that follow the path, weighted by the shares of the others.
        poly = np.zeros((rows, leaves, d + 1))
        poly[..., 0] = 1.0
        for j in range(d):
            shifted = poly[..., :-1] * on[..., j, None]
            poly *= g.share[:, j, None]
            poly[..., 1:] += shifted
        # P without slot i, for every i at once: divided by (share_i + z) when the row follows
        # slot i (from the top: each step multiplies errors by share_i <= 1, so it is stable),
        # or by share_i when it does not.
        share = np.broadcast_to(g.share, on.shape)[..., None]
        held = np.zeros((rows, leaves, d, d))
        held[..., d - 1] = poly[..., None, d]
        for k in range(d - 1, 0, -1):
            held[..., k - 1] = poly[..., None, k] - share[..., 0] * held[..., k]
        safe = np.where(share > 0, share, 1.0)
        dropped = np.where(share > 0, poly[..., None, :d] / safe, 0.0)
        without = np.where(on[..., None] > 0, held, dropped)
        scales = (on - g.share) * (without @ g.weights)  # [rows, leaves, d]
        phi = np.zeros((rows, self.columns, self.outputs))
        for i in range(d):
            scale = scales[..., i]
            for column, leaves_of in g.by_column[i]:
                phi[:, column, :] += scale[:, leaves_of] @ g.value[leaves_of]
        return phi


def _follows(x: F64, g: _Group, strict: bool) -> npt.NDArray[np.bool_]:
    """[rows, leaves, d]: whether each row's value of each slot's feature follows the path."""
    values = x[:, g.feature]
    inside = (
        (values >= g.low) & (values < g.high) if strict else ((values > g.low) & (values <= g.high))
    )
    return np.where(np.isnan(values), g.missing_ok, inside)


class InterventionalTreeShap:
    """Interventional TreeSHAP against a recorded background (for trees without node covers).

    For a row x and a background row z, a leaf's value counts in the prediction with the
    features of S taken from x and the others from z exactly when each of its path's features
    follows the path from the side it is taken from. With A the path's features only x follows
    and B those only z follows, that game's Shapley values are v (a-1)! b! / (a+b)! for each
    feature of A and -v a! (b-1)! / (a+b)! for each of B; averaged over the background, these are
    `shap.TreeExplainer(model, background)`'s values (feature_perturbation="interventional").
    """

    def __init__(self, data: dict[str, Any], columns: int) -> None:
        self.columns = columns
        self.strict = int(data["mode"]) == MODES["BRANCH_LT"]
        self.outputs = int(data["outputs"])
        self.groups, _, constant = _leaf_groups(data)
        self.background: F64 = np.asarray(data["background"], dtype=np.float64)
        reached = [_follows(self.background, g, self.strict).all(axis=2) for g in self.groups]
        mean_leaves = sum(
            (r.mean(axis=0) @ g.value for r, g in zip(reached, self.groups, strict=True)),
            np.zeros(self.outputs),
        )
        self.base: F64 = np.asarray(data["base_values"], dtype=np.float64) + constant + mean_leaves
        self._z_follows = [_follows(self.background, g, self.strict) for g in self.groups]

    def __call__(self, x: F64) -> F64:
        rows = x.shape[0]
        phi = np.zeros((rows, self.columns, self.outputs))
        pairs = len(self.background)
        for group, z_on in zip(self.groups, self._z_follows, strict=True):
            leaves, d = group.feature.shape
            weights = _pair_weights(d)
            step = max(1, _CHUNK_ELEMENTS // max(1, pairs * leaves * d))
            for start in range(0, rows, step):
                x_on = _follows(x[start : start + step], group, self.strict)[:, None]
                only_x = x_on & ~z_on[None]  # [rows, background, leaves, d]
                only_z = ~x_on & z_on[None]
                reached = (x_on | z_on[None]).all(axis=3)
                a, b = only_x.sum(axis=3), only_z.sum(axis=3)
                plus = np.where(reached, weights[0][a, b], 0.0)[..., None]
                minus = np.where(reached, weights[1][a, b], 0.0)[..., None]
                scales: F64 = (only_x * plus - only_z * minus).mean(axis=1)  # [rows, leaves, d]
                for i in range(d):
                    for column, leaves_of in group.by_column[i]:
                        phi[start : start + step, column, :] += (
                            scales[:, leaves_of, i] @ group.value[leaves_of]
                        )
        return phi


def _pair_weights(d: int) -> tuple[F64, F64]:
    """[a, b] tables: the weight of a feature x alone follows, and of one z alone follows."""
    plus, minus = np.zeros((d + 1, d + 1)), np.zeros((d + 1, d + 1))
    for a in range(d + 1):
        for b in range(d + 1 - a):
            if a:
                plus[a, b] = math.factorial(a - 1) * math.factorial(b) / math.factorial(a + b)
            if b:
                minus[a, b] = math.factorial(a) * math.factorial(b - 1) / math.factorial(a + b)
    return plus, minus


def _leaf_groups(data: dict[str, Any]) -> tuple[list[_Group], F64, F64]:
    """Walk every tree once: each leaf's path becomes one slot per distinct feature."""
    tree_ids = np.asarray(data["tree_ids"])
    node_ids = np.asarray(data["node_ids"])
    features = np.asarray(data["features"])
    modes = np.asarray(data["modes"])
    thresholds = np.asarray(data["thresholds"], dtype=np.float64)
    true_ids = np.asarray(data["true_ids"])
    false_ids = np.asarray(data["false_ids"])
    missing_true = np.asarray(data["missing_true"]).astype(bool)
    covers = np.asarray(data["covers"], dtype=np.float64)
    column_of = np.asarray(data["column_of_feature"])
    outputs = int(data["outputs"])
    leaf_values: dict[tuple[int, int], F64] = {}
    for tree, node, target, weight in zip(
        data["leaf_tree_ids"],
        data["leaf_node_ids"],
        data["leaf_targets"],
        data["leaf_weights"],
        strict=True,
    ):
        key = (int(tree), int(node))
        leaf_values.setdefault(key, np.zeros(outputs))[int(target)] += float(weight)
    by_length: dict[int, list[tuple[list[Any], F64]]] = {}
    expected = np.zeros(outputs)
    constant = np.zeros(outputs)  # leaves every row reaches (trees of one leaf)
    for tree in np.unique(tree_ids):
        rows = np.flatnonzero(tree_ids == tree)
        index = {int(node_ids[r]): int(r) for r in rows}
        children = {int(true_ids[r]) for r in rows if modes[r]} | {
            int(false_ids[r]) for r in rows if modes[r]
        }
        roots = [n for n in index if n not in children]
        if len(roots) != 1:
            raise ArtifactError(f"tree {int(tree)} of the explanation data has no single root")
        root_cover = covers[index[roots[0]]]
        stack: list[tuple[int, dict[int, list[Any]]]] = [(roots[0], {})]
        while stack:
            node, slots = stack.pop()
            r = index[node]
            if not modes[r]:
                value = leaf_values.get((int(tree), node), np.zeros(outputs))
                expected += value * covers[r] / root_cover
                if slots:
                    by_length.setdefault(len(slots), []).append((list(slots.items()), value))
                else:
                    constant += value
                continue
            feature = int(features[r])
            for child, went_true in ((int(true_ids[r]), True), (int(false_ids[r]), False)):
                low, high, missing_ok, share = slots.get(feature, (-np.inf, np.inf, True, 1.0))
                if went_true:
                    high = min(high, thresholds[r])
                else:
                    low = max(low, thresholds[r])
                share *= covers[index[child]] / covers[r] if covers[r] > 0 else 0.0
                missing_ok = missing_ok and bool(missing_true[r]) == went_true
                stack.append((child, {**slots, feature: [low, high, missing_ok, share]}))
    groups = [_slot_tables(leaves, column_of) for _, leaves in sorted(by_length.items())]
    return groups, expected, constant


def _slot_tables(leaves: list[tuple[list[Any], F64]], column_of: npt.NDArray[Any]) -> _Group:
    """The slot tables of leaves whose paths test the same number of distinct features."""
    d = len(leaves[0][0])
    slot_feature = np.array([[f for f, _ in slots] for slots, _ in leaves], dtype=np.intp)
    table = np.array([[s for _, s in slots] for slots, _ in leaves], dtype=np.float64)
    slot_column = column_of[slot_feature].astype(np.intp)
    return _Group(
        feature=slot_feature,
        by_column=[
            [(int(c), np.flatnonzero(slot_column[:, i] == c)) for c in np.unique(slot_column[:, i])]
            for i in range(d)
        ],
        low=table[..., 0],
        high=table[..., 1],
        missing_ok=table[..., 2].astype(bool),
        share=table[..., 3],
        value=np.array([value for _, value in leaves]),
        weights=np.array(
            [math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) for k in range(d)]
        ),
    )


class LinearShap:
    """Coefficient x (value - training mean): exact Shapley values of a linear model."""

    def __init__(self, data: dict[str, Any], columns: int) -> None:
        self.coef: F64 = np.asarray(data["coef"], dtype=np.float64)  # [features, outputs]
        self.means: F64 = np.asarray(data["means"], dtype=np.float64)
        onehot = np.zeros((len(self.means), columns))
        onehot[np.arange(len(self.means)), np.asarray(data["column_of_feature"])] = 1.0
        self.onehot = onehot
        self.base: F64 = np.asarray(data["intercept"], dtype=np.float64) + self.means @ self.coef

    def __call__(self, x: F64) -> F64:
        per_feature = (x - self.means)[:, :, None] * self.coef[None, :, :]
        result: F64 = np.einsum("rfk,fc->rck", per_feature, self.onehot)
        return result


class Explainer:
    """Loaded from the artifact's explanation file; runs its features graph, then the engine."""

    def __init__(self, raw: bytes, columns: int, threads: int = 1) -> None:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
        self.method: Method = str(data["method"])  # type: ignore[assignment]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._features = ort.InferenceSession(
            data["features_onnx"].tobytes(), options, providers=["CPUExecutionProvider"]
        )
        engines: dict[str, type[TreeShap | InterventionalTreeShap | LinearShap]] = {
            "linear": LinearShap,
            "interventional TreeSHAP": InterventionalTreeShap,
        }
        self._engine = engines.get(self.method, TreeShap)(data, columns)
        self.output_space = str(data["output_space"])
        self.outputs = [str(o) for o in data["output_names"]]

    @property
    def base(self) -> F64:
        return self._engine.base

    def explain(self, feeds: dict[str, npt.NDArray[Any]]) -> Explanations:
        x = np.asarray(self._features.run(None, feeds)[0], dtype=np.float64)
        return Explanations(base=self.base, contributions=self._engine(x), method=self.method)
