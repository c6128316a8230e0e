"""Reference distributions, binning and the population stability index (PSI), in plain numpy.

Training builds the references stored in the card with the same binning the server uses on live
rows, so a row lands in the same bin in both places by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelship.contracts.card import CategoricalDistribution, NumericDistribution

NUMERIC_BINS = 10  # deciles: enough resolution, few enough that a 200-row window is meaningful
MAX_CATEGORIES = 10  # the most frequent categories get a bin each; the rest share "other"
# Additive smoothing per bin (in rows) so an empty bin gives a finite, small term.
SMOOTHING_ROWS = 0.5


def numeric_reference(values: npt.ArrayLike) -> NumericDistribution:
    """Decile edges of the present values and the share of rows in each bin (NaN = missing)."""
    numbers = np.asarray(values, dtype=np.float64)
    present = numbers[~np.isnan(numbers)]
    quantiles = np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]
    # float32 edges: live values arrive as float32, so a training value equal to an edge must
    # compare the same way on both sides. Edges are training values ("lower" quantiles), and
    # few distinct values give fewer (unique) edges.
    edges = np.unique(
        np.quantile(present, quantiles, method="lower").astype(np.float32)
        if len(present)
        else np.array([], dtype=np.float32)
    )
    counts = bin_counts(numeric_bins(edges, numbers.astype(np.float32)), len(edges) + 2)
    rows = len(numbers)
    shares = counts / max(rows, 1)
    return NumericDistribution(
        rows=rows,
        edges=[float(str(e)) for e in edges],  # the shortest text that is the same float32
        proportions=[float(s) for s in shares[:-1]],
        missing=float(shares[-1]),
    )


def categorical_reference(values: Iterable[Any]) -> CategoricalDistribution:
    """Shares of the most frequent categories (ties by name), the rest together as `other`."""
    texts = [str(v) for v in values]
    names, counts = np.unique(np.asarray(texts, dtype=object), return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], str(names[i])))
    rows = max(len(texts), 1)
    top = order[:MAX_CATEGORIES]
    frequencies = {str(names[i]): float(counts[i]) / rows for i in top}
    other = float(sum(counts[i] for i in order[MAX_CATEGORIES:])) / rows
    return CategoricalDistribution(rows=len(texts), frequencies=frequencies, other=other)


def numeric_bins(edges: npt.NDArray[np.float32], values: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Bin index per value: 0..len(edges) by the edges, len(edges) + 1 for a missing value."""
    flat = values.reshape(-1)
    bins = np.searchsorted(edges, flat, side="right")
    bins[np.isnan(flat)] = len(edges) + 1
    return bins


def bin_counts(bins: npt.NDArray[np.intp], size: int) -> npt.NDArray[np.float64]:
    return np.bincount(bins, minlength=size).astype(np.float64)


def reference_shares(distribution: NumericDistribution | CategoricalDistribution) -> list[float]:
    """The training share of every bin, in the order the server counts them."""
    if isinstance(distribution, NumericDistribution):
        return [*distribution.proportions, distribution.missing]
    return [*distribution.frequencies.values(), distribution.other]


def psi(expected: Sequence[float], expected_rows: int, observed: Sequence[float]) -> float:
    """Population stability index of observed bin counts against the training shares.

    Both sides are smoothed by SMOOTHING_ROWS per bin, which keeps empty bins finite and, for
    the sizes used here, moves the index by far less than any threshold.
    """
    size = len(expected)
    train = (np.asarray(expected, dtype=np.float64) * expected_rows + SMOOTHING_ROWS) / (
        expected_rows + SMOOTHING_ROWS * size
    )
    live_counts = np.asarray(observed, dtype=np.float64)
    live = (live_counts + SMOOTHING_ROWS) / (live_counts.sum() + SMOOTHING_ROWS * size)
    return float(np.sum((live - train) * np.log(live / train)))
