"""The CSV reader: block-wise splitting for plain files, the csv module from the first quote on,
and the same line numbers either way."""

from __future__ import annotations

import io

import pytest

from modelship.errors import InvalidInput, MalformedBody
from modelship.model.codecs import csv as csv_codec
from modelship.model.codecs.csv import CsvReader

HEADER = "age,sex,bmi,children,smoker,region\n"
ROW = "40,male,28.5,1,no,northwest\n"
NAMES = ["age", "sex", "bmi", "children", "smoker", "region"]


def read(text: bytes, chunk_rows: int = 3) -> list[tuple[int, list[str]]]:
    reader = CsvReader(io.BytesIO(text), NAMES, chunk_rows)
    return [
        (line, row)
        for chunk in reader.chunks()
        for line, row in zip(chunk.lines, chunk.rows(), strict=True)
    ]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_codec, "READ_BLOCK", 50)  # many blocks, lines split across them


def test_plain_crlf_bom_and_blank_lines() -> None:
    text = ("\ufeff" + HEADER + ROW * 4 + "\n" + ROW).replace("\n", "\r\n").encode()
    rows = read(text)
    assert [line for line, _ in rows] == [2, 3, 4, 5, 7]
    assert all(cells == ROW.strip().split(",") for _, cells in rows)


def test_quotes_after_the_first_block_switch_parsers_and_keep_line_numbers() -> None:
    quoted = '41,"male",28.5,1,no,"north\nwest"\n'
    rows = read((HEADER + ROW * 5 + quoted + ROW).encode())
    # a record spanning lines is named by its last line, as the csv module counts
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6, 8, 9]
    assert rows[5][1] == ["41", "male", "28.5", "1", "no", "north\nwest"]
    with pytest.raises(InvalidInput) as caught:
        read((HEADER + ROW * 5 + quoted + "1,2\n").encode())
    assert caught.value.problems[0].loc == ("file", "line 9")


def test_wrong_width_and_bad_utf8_are_named_by_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        read((HEADER + ROW * 6 + "1,2,3\n").encode())
    assert caught.value.problems[0].loc == ("file", "line 8")
    with pytest.raises(MalformedBody, match="not valid UTF-8 on line 7, column 5"):
        read((HEADER + ROW * 5).encode() + b"40,m\xe9le,28.5,1,no,northwest\n")


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (b"\r0", r"a carriage return \(\\r\) that does not end the line"),  # found by the fuzz test
        (HEADER.replace(",bmi", ",b\rmi").encode() + ROW.encode(), "a carriage return"),
    ],
)
def test_a_header_the_csv_module_cannot_read_is_a_clear_error(text: bytes, cause: str) -> None:
    with pytest.raises(MalformedBody, match=rf"header row \(line 1\) cannot be parsed: {cause}"):
        read(text)
