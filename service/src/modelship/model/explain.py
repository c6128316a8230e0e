"""Exact per-prediction explanations: Shapley values of tree ensembles and linear models.

Everything comes from the artifact's `explanation.npz` (plain arrays, loaded without pickle):
the trees exactly as the ONNX graph holds them (thresholds, children, leaf weights), the node
covers recorded from the source model at training or import time (ONNX tree operators carry
none), and a small ONNX graph that computes the features the trees or the linear model see.

Trees use path-dependent TreeSHAP (`shap.TreeExplainer`'s default): each leaf's path is
reduced, once at load, to one slot per distinct feature on it (the interval the feature must
fall in, where a missing value goes, and the share of training samples that went this way),
as GPUTreeShap does. A row's Shapley values are then, per leaf and slot, an integral of a
product over the other slots that a few Gauss-Legendre nodes give exactly (`_Quadrature`),
computed for a block of rows and every leaf at once with numpy; everything that does not depend
on the row is tabulated at load. Linear models: coefficient x (value - training mean).
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
    """The leaves whose paths test the same number `d` of distinct features (slots)."""

    # Slot-major ([d, leaves]): what numpy steps through for one slot is contiguous.
    feature: npt.NDArray[np.intp]  # [d, leaves] index into the feature matrix
    low: F64  # [d, leaves] the interval a value must fall in (open/closed per mode)
    high: F64
    missing_ok: npt.NDArray[np.bool_]  # [d, leaves] whether a missing value follows the path
    share: F64  # [d, leaves] share of training samples the path's splits on it kept
    value: F64  # [leaves, outputs]
    # Where each slot's share of its leaf's value goes: entries (slot, cell, weight), with slot
    # a row of the [d * leaves, rows] shares, cell = column * outputs + output of the
    # contributions, weight the leaf's value for that output; sorted by cell, so each cell is a
    # sum of consecutive entries, added in the same order whatever the rows explained with it.
    entry_slot: npt.NDArray[np.intp]
    entry_weight: F64
    cell_starts: npt.NDArray[np.intp]  # where each cell's entries start
    cells: npt.NDArray[np.intp]


@dataclass(frozen=True)
class _Quadrature:
    """Path-dependent TreeSHAP's per-slot factors, evaluated at Gauss-Legendre nodes.

    A slot i of a leaf gets value x (on_i - share_i) x sum_k w_k c_k, with c_k the coefficients of
    prod_{j != i} (share_j + on_j z) and w_k = k! (d-1-k)! / d! the Shapley weights. As
    w_k is the integral of t^k (1-t)^(d-1-k) over [0, 1], that sum is the integral of
    prod_{j != i} (share_j (1 - t) + on_j t): a polynomial of degree d - 1, which ceil(d / 2)
    Gauss-Legendre nodes integrate exactly. So per row and leaf: the product over slots at each
    node, divided by each slot's own factor (a product: no cancellation, unlike unwinding the
    polynomial's coefficients).
    """

    # Logarithms, so that the product over a leaf's slots is a sum that a row's follow/not
    # pattern (0 or 1 per slot) selects linearly: log P = log_off + sum_j on_j log_gain_j.
    log_off: F64  # [nodes, leaves] log of the product of every slot's factor when not followed
    log_gain: F64  # [d, nodes, leaves] log (share (1 - t) + t) - log (share (1 - t))
    # Each slot's weight at each node, divided by its own factor (taking it out of the product):
    scale_off: F64  # [nodes, d, leaves] -share / (share (1 - t)) x weight (0 if no share)
    scale_gain: F64  # [nodes, d, leaves] (1 - share) / (share (1 - t) + t) x weight - scale_off

    @classmethod
    def of(cls, share: F64) -> _Quadrature:
        d = share.shape[0]
        nodes, weights = np.polynomial.legendre.leggauss(max(1, math.ceil(d / 2)))
        t, w = ((nodes + 1) / 2)[:, None], (weights / 2)[:, None]
        s = share[:, None, :]  # [d, nodes, leaves] below
        on = s * (1 - t) + t
        # A slot no training sample took (share 0) makes the product 0 when not followed: the
        # smallest normal float stands in for that 0 (the leaf's share then underflows to 0).
        off = np.maximum(s * (1 - t), np.finfo(np.float64).tiny)
        scale_off = np.where(s > 0, -s / off, 0.0) * w
        return cls(
            log_off=np.log(off).sum(axis=0),
            log_gain=np.log(on) - np.log(off),
            scale_off=np.ascontiguousarray(scale_off.transpose(1, 0, 2)),
            scale_gain=np.ascontiguousarray(((1 - s) / on * w - scale_off).transpose(1, 0, 2)),
        )


class TreeShap:
    """Path-dependent TreeSHAP for one ensemble, with its per-leaf tables built at load."""

    def __init__(self, data: dict[str, Any], columns: int) -> None:
        self.columns = columns
        self.strict = int(data["mode"]) == MODES["BRANCH_LT"]
        self.outputs = int(data["outputs"])
        self.groups, expected, _ = _leaf_groups(data)
        self.quadratures = [_Quadrature.of(g.share) for g in self.groups]
        self.base: F64 = np.asarray(data["base_values"], dtype=np.float64) + expected

    def __call__(self, x: F64) -> F64:
        rows = x.shape[0]
        phi = np.zeros((rows, self.columns, self.outputs))
        for group, q in zip(self.groups, self.quadratures, strict=True):
            d, nodes, leaves = q.log_gain.shape
            step = max(1, _CHUNK_ELEMENTS // max(1, leaves * d * nodes))
            for start in range(0, rows, step):
                chunk = slice(start, start + step)
                on = _follows(x[chunk], group, self.strict).astype(np.float64)  # [d, leaves, rows]
                # log of the product over slots at each node: [nodes, leaves, rows]
                logs = q.log_off[:, :, None] + q.log_gain[0][:, :, None] * on[0]
                for j in range(1, d):
                    logs += q.log_gain[j][:, :, None] * on[j]
                products = np.exp(logs)
                # [d, leaves, rows]: each slot's share of its leaf's value.
                scales = q.scale_off[0][:, :, None] * products[0]
                gains = q.scale_gain[0][:, :, None] * products[0]
                for n in range(1, nodes):
                    scales += q.scale_off[n][:, :, None] * products[n]
                    gains += q.scale_gain[n][:, :, None] * products[n]
                scales += on * gains
                _add_to_columns(phi[chunk], scales.reshape(d * leaves, -1), group)
        return phi


def _add_to_columns(phi: F64, scales: F64, g: _Group) -> None:
    """Sum each slot's share of its leaf's value ([d * leaves, rows]) into phi, in place."""
    if not len(g.cells):  # every leaf of the group holds 0
        return
    weighted = scales[g.entry_slot] * g.entry_weight[:, None]
    phi.reshape(len(phi), -1)[:, g.cells] += np.add.reduceat(weighted, g.cell_starts, axis=0).T


def _follows(x: F64, g: _Group, strict: bool) -> npt.NDArray[np.bool_]:
    """[d, leaves, rows]: whether each row's value of each slot's feature follows the path."""
    values = x.T[g.feature]
    low, high = g.low[..., None], g.high[..., None]
    inside = (values >= low) & (values < high) if strict else ((values > low) & (values <= high))
    return np.where(np.isnan(values), g.missing_ok[..., None], inside)


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
        reached = [_follows(self.background, g, self.strict).all(axis=0).T for g in self.groups]
        mean_leaves = sum(
            (r.mean(axis=0) @ g.value for r, g in zip(reached, self.groups, strict=True)),
            np.zeros(self.outputs),
        )
        self.base: F64 = np.asarray(data["base_values"], dtype=np.float64) + constant + mean_leaves
        self._z_follows = [
            _rows_first(_follows(self.background, g, self.strict)) for g in self.groups
        ]

    def __call__(self, x: F64) -> F64:
        rows = x.shape[0]
        phi = np.zeros((rows, self.columns, self.outputs))
        pairs = len(self.background)
        for group, z_on in zip(self.groups, self._z_follows, strict=True):
            d, leaves = group.feature.shape
            weights = _pair_weights(d)
            step = max(1, _CHUNK_ELEMENTS // max(1, pairs * leaves * d))
            for start in range(0, rows, step):
                x_on = _rows_first(_follows(x[start : start + step], group, self.strict))[:, None]
                only_x = x_on & ~z_on[None]  # [rows, background, leaves, d]
                only_z = ~x_on & z_on[None]
                reached = (x_on | z_on[None]).all(axis=3)
                a, b = only_x.sum(axis=3), only_z.sum(axis=3)
                plus = np.where(reached, weights[0][a, b], 0.0)[..., None]
                minus = np.where(reached, weights[1][a, b], 0.0)[..., None]
                scales: F64 = (only_x * plus - only_z * minus).mean(axis=1)  # [rows, leaves, d]
                shares = scales.transpose(2, 1, 0).reshape(d * leaves, -1)
                _add_to_columns(phi[start : start + step], shares, group)
        return phi


def _rows_first(on: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """[d, leaves, rows] -> [rows, leaves, d]."""
    return on.transpose(2, 1, 0)


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
    # float32 as most converters write them, or float64 where the graph's trees compare the
    # float64 input (histogram boosting, LightGBM): the features graph then yields float64 too.
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
    groups = [_slot_tables(leaves, column_of, outputs) for _, leaves in sorted(by_length.items())]
    return groups, expected, constant


def _slot_tables(
    leaves: list[tuple[list[Any], F64]],
    column_of: npt.NDArray[Any],
    outputs: int,
) -> _Group:
    """The slot tables of leaves whose paths test the same number of distinct features."""
    d = len(leaves[0][0])
    slot_feature = np.array([[f for f, _ in slots] for slots, _ in leaves], dtype=np.intp)
    table = np.array([[s for _, s in slots] for slots, _ in leaves], dtype=np.float64)
    value = np.array([value for _, value in leaves])
    leaf, output = np.nonzero(value)  # boosters' leaves hold one output, forests' all
    slot = (np.arange(d) * len(leaves) + leaf[:, None]).ravel()
    cell = (column_of[slot_feature[leaf]] * outputs + output[:, None]).ravel()
    order = np.argsort(cell, kind="stable")
    cells, starts = np.unique(cell[order], return_index=True)
    return _Group(
        feature=np.ascontiguousarray(slot_feature.T),
        low=np.ascontiguousarray(table[..., 0].T),
        high=np.ascontiguousarray(table[..., 1].T),
        missing_ok=np.ascontiguousarray(table[..., 2].T.astype(bool)),
        share=np.ascontiguousarray(table[..., 3].T),
        value=value,
        entry_slot=slot[order],
        entry_weight=np.repeat(value[leaf, output], d)[order],
        cell_starts=starts.astype(np.intp),
        cells=cells.astype(np.intp),
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
