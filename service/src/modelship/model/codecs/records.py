"""JSON records (a list of objects with every feature) into the model's input arrays."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelship.errors import Location, ProblemCollector
from modelship.model.codecs.base import FeatureSchema, ModelInput, Warnings, category_text, clip

# From this many records on, a batch first tries the column-wise path (cheaper only for batches).
FAST_PATH_ROWS = 32


class RecordsCodec:
    """Validates JSON records against the feature schema, naming the row and field of problems."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self._lows = {name: schema.bounds[name][0] for name in schema.numeric}
        self._highs = {name: schema.bounds[name][1] for name in schema.numeric}

    def decode(self, records: Sequence[Any], loc_prefix: Location = ("body",)) -> ModelInput:
        """Validate a list of JSON records (each an object with every feature) into arrays."""
        if len(records) >= FAST_PATH_ROWS:
            fast = self._clean_records(records, loc_prefix)
            if fast is not None:
                return fast
        schema = self.schema
        problems = ProblemCollector()
        warnings = Warnings()
        numeric_cols: dict[str, list[float]] = {name: [] for name in schema.numeric}
        text_cols: dict[str, list[str]] = {name: [] for name in schema.categorical}
        with_rows = len(loc_prefix) > 1 or len(records) > 1
        for index, record in enumerate(records):
            loc = (*loc_prefix, index) if with_rows else loc_prefix
            row = index if with_rows else None
            if not isinstance(record, dict):
                problems.add(
                    loc,
                    f"expected an object of feature values, got {json_type(record)}",
                    f"an object with the fields {', '.join(schema.names)}",
                )
                continue
            if record.keys() != schema.name_set:
                self._key_problems(record, loc, problems)
                continue
            for name in schema.numeric:
                numeric_cols[name].append(
                    self._numeric_value(record[name], (*loc, name), row, problems, warnings)
                )
            for name in schema.categorical:
                text_cols[name].append(
                    self._category_value(record[name], (*loc, name), row, problems, warnings)
                )
        problems.raise_if_any()
        locs = [(*loc_prefix, i) for i in range(len(records))] if with_rows else [loc_prefix]
        return ModelInput(schema.arrays(numeric_cols, text_cols), len(records), warnings, locs)

    def _clean_records(self, records: Sequence[Any], loc_prefix: Location) -> ModelInput | None:
        """Batches where every value is plainly valid, column by column with numpy; None when
        anything needs a word (a missing key, a null to impute, an unseen category, a bad value):
        the record-by-record path then says exactly what and where. The profiler found most of a
        large JSON batch's validation in the record-by-record loop
        (docs/benchmarks.md#what-changed-and-why)."""
        schema = self.schema
        width = len(schema.names)
        if not all(type(record) is dict and len(record) == width for record in records):
            return None
        try:
            columns = {name: [record[name] for record in records] for name in schema.names}
        except KeyError:
            return None
        feeds: dict[str, npt.NDArray[Any]] = {}
        for name in schema.numeric:
            column = columns[name]
            if not all(type(value) is float or type(value) is int for value in column):
                return None
            try:
                values = np.asarray(column, dtype=np.float64)
            except OverflowError:  # an integer beyond float64
                return None
            if not (values >= self._lows[name]).all() or not (values <= self._highs[name]).all():
                return None  # NaN fails both comparisons
            feeds[schema.input_name[name]] = values.astype(schema.dtype[name]).reshape(-1, 1)
        for name in schema.categorical:
            column = columns[name]
            if not all(type(value) is str for value in column):
                return None
            if not schema.known[name].issuperset(column):
                return None
            feeds[schema.input_name[name]] = np.asarray(column, dtype=object).reshape(-1, 1)
        locs: list[Location] = [(*loc_prefix, i) for i in range(len(records))]
        return ModelInput(feeds, len(records), Warnings(), locs, categories_known=True)

    def _key_problems(self, record: dict[str, Any], loc: Location, out: ProblemCollector) -> None:
        names = self.schema.names
        for name in names:
            if name not in record:
                out.add((*loc, name), "required field is missing", "every feature of the model")
        extra = sorted(str(key) for key in record if key not in self.schema.name_set)
        for name in extra:
            out.add((*loc, name), "unknown field", f"only the features {', '.join(names)}")

    def _numeric_value(
        self,
        value: Any,
        loc: Location,
        row: int | None,
        problems: ProblemCollector,
        warnings: Warnings,
    ) -> float:
        name = str(loc[-1])
        if value is None:
            self.schema.warn_missing(name, row, warnings)
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.add(
                loc, f"expected a number, got {json_type(value)}", self.schema.numeric_hint(name)
            )
            return math.nan
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float64 (V2 JSON may carry one)
            number = math.inf
        if not self.schema.check_number(name, number, clip(str(value)), loc, problems):
            return math.nan
        return number

    def _category_value(
        self,
        value: Any,
        loc: Location,
        row: int | None,
        problems: ProblemCollector,
        warnings: Warnings,
    ) -> str:
        name = str(loc[-1])
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            text = category_text(value)
        else:
            problems.add(
                loc,
                f"expected a category (string), got {json_type(value)}",
                self.schema.known_listing[name],
            )
            return ""
        self.schema.check_known(name, text, row, warnings)
        return text


def json_type(value: Any) -> str:
    """How a JSON value is named in an error: 'a string ('forty')', 'an array', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({clip(value)!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
