"""CSV files (a header row, then one row per record) into the model's input arrays, in chunks."""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from modelship.codecs.base import MISSING_TOKENS, Batch, FeatureSchema, Warnings, clip
from modelship.errors import InvalidInput, Location, MalformedBody, Problem, ProblemCollector

CsvRows = Sequence[tuple[int, list[str]]]  # (line number, cells) of each data row


class CsvCodec:
    """Checks a CSV header and turns chunks of its rows into validated arrays."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema

    def header_problems(self, header: Sequence[str], required: Sequence[str]) -> list[Problem]:
        present = set(header)
        problems: list[Problem] = []
        names = self.schema.name_set
        duplicates = sorted({c for c in header if header.count(c) > 1 and c in names})
        for name in duplicates:
            problems.append(Problem(("file", "line 1", name), "column appears more than once"))
        missing = [name for name in required if name not in present]
        if missing:
            looks_headerless = not present & set(required) and any(_is_number(c) for c in header)
            hint = (
                " (the first line looks like data: the CSV needs a header row)" * looks_headerless
            )
            for name in missing:
                problems.append(
                    Problem(
                        ("file", "line 1", name),
                        f"required column is missing{hint}",
                        f"a header row naming the columns {', '.join(required)}",
                    )
                )
        return problems

    def decode(self, rows: CsvRows, positions: dict[str, int]) -> Batch:
        """Validate CSV data rows (line number, cells) given each feature's column position."""
        schema = self.schema
        problems = ProblemCollector()
        warnings = Warnings()
        feeds: dict[str, npt.NDArray[Any]] = {}
        for name in schema.numeric:
            column = positions[name]
            fast = _parse_numbers([cells[column] for _, cells in rows], *schema.bounds[name])
            if fast is not None:
                feeds[schema.input_name[name]] = fast.reshape(-1, 1)
                continue
            values = np.empty(len(rows), dtype=np.float32)
            for i, (line, cells) in enumerate(rows):
                text = cells[column].strip()
                if text in MISSING_TOKENS:
                    schema.warn_missing(name, line, warnings)
                    values[i] = math.nan
                    continue
                loc = ("file", f"line {line}", name)
                try:
                    number = float(text)
                except ValueError:
                    problems.add(
                        loc, f"expected a number, got {clip(text)!r}", schema.numeric_hint(name)
                    )
                    continue
                if schema.check_number(name, number, repr(clip(text)), loc, problems):
                    values[i] = number
            feeds[schema.input_name[name]] = values.reshape(-1, 1)
        for name in schema.categorical:
            column = positions[name]
            texts = [cells[column] for _, cells in rows]
            known = schema.known[name]
            if not known.issuperset(texts):  # the common case, all known, costs one set pass
                for (line, _), text in zip(rows, texts, strict=True):
                    if text not in known:
                        schema.check_known(name, text, line, warnings)
            feeds[schema.input_name[name]] = np.asarray(texts, dtype=object).reshape(-1, 1)
        problems.raise_if_any()
        locs: list[Location] = [("file", f"line {line}") for line, _ in rows]
        return Batch(feeds, len(rows), warnings, locs)


def _parse_numbers(texts: list[str], low: float, high: float) -> npt.NDArray[np.float32] | None:
    """A CSV column of plain finite numbers in one numpy call, or None to take the cell-by-cell
    path (missing values, text, out-of-range numbers: it reports or imputes each of them).

    The profiler put 45% of a 100,000-row CSV upload in the per-cell loop; this path is ~10x faster.
    """
    try:
        values = np.asarray(texts, dtype=np.float64)
    except ValueError:
        return None
    if not (values >= low).all() or not (values <= high).all():  # NaN fails both
        return None
    return values.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _utf8_lines(binary: IO[bytes]) -> Iterator[str]:
    """Decode line by line, so an encoding error can name its line and column."""
    for number, raw in enumerate(binary, 1):
        line = (
            raw[len(codecs.BOM_UTF8) :] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw
        )
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBody(
                f"the CSV is not valid UTF-8 on line {number}, column {exc.start + 1} "
                f"(byte {exc.object[exc.start : exc.start + 1]!r}): save the file as UTF-8"
            ) from None


class CsvReader:
    """Reads a CSV file in chunks of rows, with the header checked up front.

    Keeps memory bounded: only one chunk of rows is held at a time.
    """

    def __init__(self, binary: IO[bytes], required: Sequence[str], chunk_rows: int) -> None:
        self._reader = csv.reader(_utf8_lines(binary))
        self._chunk_rows = chunk_rows
        first = self._next_row()
        if first is None:
            raise MalformedBody(
                "the CSV file is empty: expected a header row naming the columns "
                + ", ".join(required)
            )
        self.header = first
        self.positions = {name: i for i, name in enumerate(first)}
        self.required = list(required)

    def _next_row(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise MalformedBody(
                f"the CSV cannot be parsed at line {self._reader.line_num}: {exc}"
            ) from exc

    def chunks(self) -> Iterator[list[tuple[int, list[str]]]]:
        width = len(self.header)
        chunk: list[tuple[int, list[str]]] = []
        seen_any = False
        while (row := self._next_row()) is not None:
            if not row:  # a blank line
                continue
            line = self._reader.line_num
            if len(row) != width:
                raise InvalidInput(
                    [
                        Problem(
                            ("file", f"line {line}"),
                            f"has {len(row)} values but the header has {width} columns",
                            "one value per header column (quote values that contain commas)",
                        )
                    ]
                )
            chunk.append((line, row))
            seen_any = True
            if len(chunk) >= self._chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        if not seen_any:
            raise MalformedBody("the CSV has a header row but no data rows")
