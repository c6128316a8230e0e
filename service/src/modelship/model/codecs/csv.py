"""CSV files (a header row, then one row per record) into the model's input arrays, in chunks."""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from modelship.errors import InvalidInput, Location, MalformedBody, Problem, ProblemCollector
from modelship.model.codecs.base import MISSING_TOKENS, FeatureSchema, ModelInput, Warnings, clip

CsvRows = Sequence[tuple[int, list[str]]]  # (line number, cells) of each data row
# Told each row of the wrong width when rows may be left out: its line, its cells, the problem.
BadRow = Callable[[int, list[str], Problem], None]
READ_BLOCK = 1024 * 1024  # bytes read at a time


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

    def decode(self, chunk: CsvChunk, positions: dict[str, int]) -> ModelInput:
        """Validate a chunk of CSV rows given each feature's column position."""
        schema = self.schema
        problems = ProblemCollector()
        warnings = Warnings()
        feeds: dict[str, npt.NDArray[Any]] = {}
        categories_known = True
        for name in schema.numeric:
            column = positions[name]
            cells = chunk.columns[column]
            fast = _parse_numbers(cells, *schema.bounds[name], schema.dtype[name])
            if fast is not None:
                feeds[schema.input_name[name]] = fast.reshape(-1, 1)
                continue
            values = np.empty(len(cells), dtype=schema.dtype[name])
            for i, (line, cell) in enumerate(zip(chunk.lines, cells, strict=True)):
                text = cell.strip()
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
            texts = chunk.columns[column]
            known = schema.known[name]
            if not known.issuperset(texts):  # the common case, all known, costs one set pass
                categories_known = False
                for line, text in zip(chunk.lines, texts, strict=True):
                    if text not in known:
                        schema.check_known(name, text, line, warnings)
            feeds[schema.input_name[name]] = np.asarray(texts, dtype=object).reshape(-1, 1)
        problems.raise_if_any()
        return ModelInput(
            feeds, len(chunk), warnings, _LineLocations(chunk.lines), categories_known
        )


class _LineLocations(Sequence[Location]):
    """Each row's location, made only when an error needs one (not 100,000 tuples per upload)."""

    def __init__(self, lines: list[int]) -> None:
        self._lines = lines

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [("file", f"line {line}") for line in self._lines[index]]
        return ("file", f"line {self._lines[index]}")


def _parse_numbers(
    texts: list[str], low: float, high: float, dtype: np.dtype[Any]
) -> npt.NDArray[Any] | None:
    """A CSV column of plain finite numbers in one numpy call, or None to take the cell-by-cell
    path (missing values, text, out-of-range numbers: it reports or imputes each of them).

    The profiler found most of a large CSV upload's time in the per-cell loop
    (docs/benchmarks.md#what-changed-and-why).
    """
    try:
        values = np.asarray(texts, dtype=np.float64)
    except ValueError:
        return None
    if not (values >= low).all() or not (values <= high).all():  # NaN fails both
        return None
    return values.astype(dtype, copy=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class CsvChunk:
    """Consecutive data rows: column-major cells, and each row's line number in the file."""

    lines: list[int]
    columns: list[list[str]]  # columns[j][i]: the cell of column j in row i
    texts: list[str] | None = None  # each row's own CSV text, when it can be copied through

    @classmethod
    def from_rows(cls, rows: CsvRows) -> CsvChunk:
        return cls(
            [line for line, _ in rows],
            [list(column) for column in zip(*(r for _, r in rows), strict=True)],
        )

    def __len__(self) -> int:
        return len(self.lines)

    def slice(self, start: int, stop: int) -> CsvChunk:
        """Rows `start` to `stop` as a chunk of their own."""
        return CsvChunk(
            self.lines[start:stop],
            [column[start:stop] for column in self.columns],
            None if self.texts is None else self.texts[start:stop],
        )

    def rows(self) -> Iterator[list[str]]:
        return (list(row) for row in zip(*self.columns, strict=True))


class CsvReader:
    """Reads a CSV file in chunks of rows, with the header checked up front.

    Memory stays bounded: one block of the file and one chunk of rows at a time. Files without
    quotes are split with `str.split` over whole blocks (C speed, no per-cell Python); from the
    first quote character on, the `csv` module parses the rest, so quoted cells (commas,
    newlines inside) stay exact. Both report a bad line by its number in the file. A row with
    the wrong number of values is an error, or, given `on_bad_row`, handed to it and left out.
    """

    def __init__(
        self,
        binary: IO[bytes],
        required: Sequence[str],
        chunk_rows: int,
        on_bad_row: BadRow | None = None,
    ) -> None:
        self._binary = binary
        self._chunk_rows = chunk_rows
        self._on_bad_row = on_bad_row
        self._any_row = False  # a data row was read (even one left out)
        self._next_line = 1  # number of the first line not yet made into a chunk
        self._read_line = 1  # number of the first line of the next block read
        self._tail = b""
        self._ended = False
        self.required = list(required)
        text = self._read_text()
        if text.startswith("\ufeff"):
            text = text[1:]
        header_end = text.find("\n")
        header_text = text if header_end < 0 else text[: header_end + 1]
        self._pending = "" if header_end < 0 else text[header_end + 1 :]
        self._quoted = '"' in text
        if self._quoted:  # the header itself may be quoted, or span lines: the csv module's job
            self._pending = text
        else:
            self._next_line = 2
        self._slow: Iterator[list[str]] | None = None
        self._slow_reader: Any = None
        try:
            first = self._slow_row() if self._quoted else next(csv.reader([header_text]), None)
        except csv.Error as exc:  # a lone carriage return (seen as a line break), a NUL byte
            cause = (
                "a carriage return (\\r) that does not end the line"
                if "\r" in header_text.rstrip("\r\n")
                else str(exc)
            )
            raise MalformedBody(
                f"the CSV header row (line 1) cannot be parsed: {cause}; lines end with \\n or "
                "\\r\\n, and a field holding a line break must be quoted"
            ) from exc
        if not first:
            raise MalformedBody(
                "the CSV file is empty: expected a header row naming the columns "
                + ", ".join(required)
            )
        self.header = first
        self.positions = {name: i for i, name in enumerate(first)}

    # --- reading and decoding blocks ----------------------------------------------------------
    def _read_text(self) -> str:
        """The next block of whole lines as text (all that is left at the end of the file)."""
        while not self._ended:
            block = self._binary.read(READ_BLOCK)
            if not block:
                self._ended = True
                data, self._tail = self._tail, b""
                return self._decode(data)
            data = self._tail + block
            cut = data.rfind(b"\n") + 1
            if cut:
                self._tail = data[cut:]
                return self._decode(data[:cut])
            self._tail = data
        return ""

    def _decode(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = data[: exc.start]
            line = self._read_line + before.count(b"\n")
            column = exc.start - (before.rfind(b"\n") + 1) + 1
            if line == 1 and data.startswith(codecs.BOM_UTF8):
                column -= len(codecs.BOM_UTF8)
            raise MalformedBody(
                f"the CSV is not valid UTF-8 on line {line}, column {column} "
                f"(byte {data[exc.start : exc.start + 1]!r}): save the file as UTF-8"
            ) from None
        self._read_line += text.count("\n")
        return text

    # --- the csv module, from the first quote on ----------------------------------------------
    def _slow_lines(self) -> Iterator[str]:
        yield from self._pending.splitlines(keepends=True)
        self._pending = ""
        while text := self._read_text():
            yield from text.splitlines(keepends=True)

    def _slow_row(self) -> list[str] | None:
        if self._slow_reader is None:
            self._slow_offset = self._next_line - 1
            self._slow_reader = csv.reader(self._slow_lines())
        try:
            return list(next(self._slow_reader))
        except StopIteration:
            return None
        except csv.Error as exc:
            raise MalformedBody(
                f"the CSV cannot be parsed at line {self._slow_line()}: {exc}"
            ) from exc

    def _slow_line(self) -> int:
        return int(self._slow_offset + self._slow_reader.line_num)

    # --- chunks -------------------------------------------------------------------------------
    def chunks(self) -> Iterator[CsvChunk]:
        for chunk in self._chunks():
            if chunk.lines:  # empty when every row of it was left out
                yield chunk
        if not self._any_row:
            raise MalformedBody("the CSV has a header row but no data rows")

    def _chunks(self) -> Iterator[CsvChunk]:
        pending = self._pending.replace("\r\n", "\n") if "\r" in self._pending else self._pending
        lines: list[str] = pending.split("\n") if not self._quoted else []
        while not self._quoted:
            if lines and lines[-1] == "":
                lines.pop()  # the text after the last newline of the block
            while len(lines) >= self._chunk_rows:
                yield self._fast_chunk(lines[: self._chunk_rows])
                del lines[: self._chunk_rows]
            text = self._read_text()
            if not text:
                break
            if "\r" in text:  # Windows line ends; a lone \r is left to the width check
                text = text.replace("\r\n", "\n")
            if '"' in text:
                self._quoted = True
                self._pending = "".join(line + "\n" for line in lines) + text
                lines = []
                break
            lines.extend(text.split("\n"))
        if lines:
            yield self._fast_chunk(lines)
        if self._quoted:
            yield from self._slow_chunks()

    def _fast_chunk(self, lines: list[str]) -> CsvChunk:
        first = self._next_line
        self._next_line += len(lines)
        width = len(self.header)
        if "" in lines:  # blank lines are skipped, as the csv module does
            numbers = [first + i for i, line in enumerate(lines) if line]
            lines = [line for line in lines if line]
        else:
            numbers = list(range(first, first + len(lines)))
        self._any_row = self._any_row or bool(lines)
        cells = ",".join(lines).split(",")
        if len(cells) != width * len(lines) or "\r" in cells[-1]:
            kept: list[tuple[int, str]] = []
            for number, line in zip(numbers, lines, strict=True):
                if line.count(",") + 1 != width or "\r" in line:
                    self._bad_row(number, line.split(","), width)
                else:
                    kept.append((number, line))
            numbers, lines = [n for n, _ in kept], [line for _, line in kept]
            cells = ",".join(lines).split(",") if lines else []
        columns = [cells[j::width] for j in range(width)]
        return CsvChunk(numbers, columns, lines)

    def _slow_chunks(self) -> Iterator[CsvChunk]:
        width = len(self.header)
        rows: list[tuple[int, list[str]]] = []
        while (row := self._slow_row()) is not None:
            if not row:  # a blank line
                continue
            line = self._slow_line()
            self._any_row = True
            if len(row) != width:
                self._bad_row(line, row, width)
                continue
            rows.append((line, row))
            if len(rows) >= self._chunk_rows:
                yield CsvChunk.from_rows(rows)
                rows = []
        if rows:
            yield CsvChunk.from_rows(rows)

    def _bad_row(self, line: int, cells: list[str], width: int) -> None:
        problem = Problem(
            ("file", f"line {line}"),
            f"has {len(cells)} values but the header has {width} columns",
            "one value per header column (quote values that contain commas)",
        )
        if self._on_bad_row is None:
            raise InvalidInput([problem])
        self._on_bad_row(line, cells, problem)
