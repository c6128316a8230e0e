"""What every codec shares: the model's feature schema, its value rules, and the decoded batch.

One input tensor per feature, shape [rows, 1]: numbers in the element type the model's input
declares (`FeatureSchema.dtype`: float64, or float32 in older artifacts), strings for categorical
ones. Validation names the row, the field, what was wrong and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelship.contracts.card import InputDtype, ModelCard, NumericStats
from modelship.errors import Location, ProblemCollector

FLOAT32_MAX = float(np.finfo(np.float32).max)
# Cells that mean "no value" in a numeric CSV column; the model imputes them.
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
MAX_LISTED_ROWS = 10
EXTRAPOLATION_SPANS = 10_000
NUMPY_DTYPES: dict[InputDtype, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "string": np.dtype(object),
}
MAX_LISTED_CATEGORIES = 20


# Where orjson writes a float exactly as numpy's `astype(str)` does: the same shortest digits
# in positional notation. Outside (tiny, huge, NaN, infinity) the two differ in notation
# ("1e-05" against "0.00001", "nan" against "null"), so those values are left to numpy; the
# margins are wide of where numpy switches to scientific notation (below 1e-4, and at 1e16 for
# float64 or 1e7 for float32 when fewer digits than the integer part are significant).
_POSITIONAL = {np.dtype(np.float64): (1e-3, 1e15), np.dtype(np.float32): (1e-3, 1e5)}


def number_texts(values: npt.NDArray[Any]) -> list[str]:
    """Each value as the text `values.astype(str)` gives (the shortest that round-trips its
    dtype), about 15 times faster for floats: the prediction text of a large CSV answer was an
    eighth of the upload's time (docs/benchmarks.md#csv-at-2x)."""
    bounds = _POSITIONAL.get(values.dtype)
    if bounds is None or values.ndim != 1 or not len(values):
        return values.astype(str).tolist()  # type: ignore[no-any-return]
    values = np.ascontiguousarray(values)  # a probability column is a strided view
    texts = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        elsewhere = ~(((magnitude >= bounds[0]) & (magnitude < bounds[1])) | (values == 0))
    if elsewhere.any():
        where = np.flatnonzero(elsewhere)
        for index, text in zip(where.tolist(), values[where].astype(str).tolist(), strict=True):
            texts[index] = text
    return texts


def numeric_bounds(stats: NumericStats) -> tuple[float, float]:
    """The widest values accepted: the training range widened by EXTRAPOLATION_SPANS each way.

    Far beyond that, a prediction is meaningless and float32 arithmetic in the model can
    overflow, so such values are refused with the range that would be accepted.
    """
    span = max(stats.max - stats.min, 1.0)
    low = max(stats.min - EXTRAPOLATION_SPANS * span, -FLOAT32_MAX)
    high = min(stats.max + EXTRAPOLATION_SPANS * span, FLOAT32_MAX)
    return float(f"{low:.6g}"), float(f"{high:.6g}")


def category_text(value: str | int | float | bool) -> str:
    """The text a category value is known by; matches how training read it from a CSV."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _listing(values: Sequence[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:MAX_LISTED_CATEGORIES])
    extra = len(values) - MAX_LISTED_CATEGORIES
    return shown + (f" … ({extra} more)" if extra > 0 else "")


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Warnings:
    """Non-fatal findings (unseen categories, imputed values), grouped by field and value."""

    _groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, feature: str, problem: str, note: str, row: int | None) -> None:
        group = self._groups.get((feature, problem))
        if group is None:
            group = {"field": feature, "problem": problem, "note": note, "count": 0}
            if row is not None:
                group["rows"] = []
            self._groups[(feature, problem)] = group
        group["count"] += 1
        if row is not None and len(group["rows"]) < MAX_LISTED_ROWS:
            group["rows"].append(row)

    def merge(self, other: Warnings) -> None:
        for key, theirs in other._groups.items():
            mine = self._groups.setdefault(key, {**theirs, "count": 0, "rows": []})
            mine["count"] += theirs["count"]
            rows = mine.get("rows")
            if rows is not None:
                rows.extend(theirs.get("rows", [])[: MAX_LISTED_ROWS - len(rows)])

    def as_json(self) -> list[dict[str, Any]]:
        return list(self._groups.values())

    def summary(self) -> str:
        return "; ".join(
            f"{g['field']}: {g['problem']} ({g['count']} row{'s' * (g['count'] > 1)})"
            for g in self._groups.values()
        )

    def __bool__(self) -> bool:
        return bool(self._groups)


@dataclass
class ModelInput:
    """Validated model input: one array per ONNX input, and where each row came from."""

    feeds: dict[str, npt.NDArray[Any]]
    rows: int
    warnings: Warnings
    row_locs: Sequence[Location]  # where each row came from, for errors found after validation
    # The codec found every categorical value among the training categories: the drift monitor
    # need not look for unseen ones again (a tenth of its work on a large CSV upload).
    categories_known: bool = False


class FeatureSchema:
    """What the model accepts, built once from the card; the value rules every codec applies."""

    def __init__(self, card: ModelCard) -> None:
        self.names = [f.name for f in card.features]
        self.numeric = [f.name for f in card.features if f.kind == "numeric"]
        self.categorical = [f.name for f in card.features if f.kind == "categorical"]
        self.name_set = frozenset(self.names)
        self.known = {f.name: frozenset(f.categories or ()) for f in card.features}
        self.known_listing = {f.name: _listing(f.categories or []) for f in card.features}
        self.median = {f.name: f.numeric.median for f in card.features if f.numeric is not None}
        self.bounds = {
            f.name: numeric_bounds(f.numeric) for f in card.features if f.numeric is not None
        }
        self.input_name = {f.name: f.input_name for f in card.features}
        # The one place every path that builds input arrays takes each feature's dtype from.
        self.dtype = {f.name: NUMPY_DTYPES[f.dtype] for f in card.features}

    def numeric_hint(self, name: str) -> str:
        return f"a finite number, or null to impute the training median {self.median[name]:g}"

    def warn_missing(self, name: str, row: int | None, warnings: Warnings) -> None:
        warnings.add(
            name, "missing value", f"imputed with the training median {self.median[name]:g}", row
        )

    def check_number(
        self, name: str, number: float, text: str, loc: Location, problems: ProblemCollector
    ) -> bool:
        """Whether a parsed number is within the accepted range, else one problem naming `text`
        (the value as the client wrote it) is added. JSON, CSV and V2 share this one rule."""
        low, high = self.bounds[name]
        if math.isfinite(number) and low <= number <= high:
            return True
        problems.add(loc, f"number {text} is out of range", self.numeric_hint(name))
        return False

    def check_known(self, name: str, text: str, row: int | None, warnings: Warnings) -> None:
        if text not in self.known[name]:
            warnings.add(
                name,
                f"unseen category {text!r}",
                f"not seen in training, so the model ignores it; known: {self.known_listing[name]}",
                row,
            )

    def arrays(
        self, numeric_cols: dict[str, Any], text_cols: dict[str, Any]
    ) -> dict[str, npt.NDArray[Any]]:
        """The ONNX feeds from one sequence of values per feature."""
        feeds: dict[str, npt.NDArray[Any]] = {}
        for name, numbers in numeric_cols.items():
            feeds[self.input_name[name]] = np.asarray(numbers, dtype=self.dtype[name]).reshape(
                -1, 1
            )
        for name, texts in text_cols.items():
            feeds[self.input_name[name]] = np.asarray(texts, dtype=object).reshape(-1, 1)
        return feeds
