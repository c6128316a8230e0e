"""`predict_csv`: two threads each read, predict and write chunks, so one parses or writes while
the other's model runs; the output is the same, in the same order, whatever the chunk size;
errors still name their line, and the first one in the file is the one raised."""

from __future__ import annotations

import io
import threading

import pytest

from modelship.errors import InvalidInput
from modelship.model.codecs.base import ModelInput
from modelship.model.predictor import Predictions, Predictor
from modelship.serving.feedback import PREDICTION_ID
from modelship.serving.scoring import MOST_AHEAD, predict_csv

HEADER = "age,sex,bmi,children,smoker,region"


def rows(count: int) -> list[str]:
    regions = ["northwest", "northeast", "southwest", "southeast"]
    return [
        f"{20 + i % 40},{'male' if i % 2 else 'female'},{20 + i % 17}.5,{i % 4},"
        f"{'yes' if i % 5 == 0 else 'no'},{regions[i % 4]}"
        for i in range(count)
    ]


def predicted(predictor: Predictor, lines: list[str], chunk_rows: int) -> list[str]:
    out = io.StringIO()
    summary = predict_csv(
        predictor, io.BytesIO("\n".join([HEADER, *lines]).encode()), out, chunk_rows
    )
    assert summary.rows == len(lines)
    return out.getvalue().splitlines()


def test_output_is_the_same_in_order_for_any_chunk_size(regression_predictor: Predictor) -> None:
    lines = rows(1_003)
    whole = predicted(regression_predictor, lines, 10_000)
    assert whole[0] == ",".join([HEADER, *regression_predictor.card.prediction_columns])
    assert [line.rsplit(",", 1)[0] for line in whole[1:]] == lines
    for chunk_rows in (1, 7, 500):
        assert predicted(regression_predictor, lines, chunk_rows) == whole


def test_a_bad_cell_in_a_later_chunk_names_its_line(regression_predictor: Predictor) -> None:
    lines = rows(50)
    lines[37] = "forty" + lines[37][2:]
    with pytest.raises(InvalidInput) as info:
        predicted(regression_predictor, lines, 10)
    assert info.value.problems[0].loc[:2] == ("file", "line 39")


def test_a_model_error_in_a_later_chunk_is_raised_not_lost(
    regression_predictor: Predictor,
) -> None:
    calls: list[int] = []
    real = regression_predictor.predict

    def failing_third(batch: ModelInput, _first_row: int) -> Predictions:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the model failed on chunk 3")
        return real(batch)

    out = io.StringIO()
    with pytest.raises(RuntimeError, match="chunk 3"):
        predict_csv(
            regression_predictor,
            io.BytesIO("\n".join([HEADER, *rows(50)]).encode()),
            out,
            10,
            failing_third,
        )
    assert len(calls) <= 4  # stops within one chunk of the failure


def test_two_chunks_are_predicted_at_once_and_written_in_order(
    regression_predictor: Predictor,
) -> None:
    """The first chunk's prediction waits until the second one's has started (it would wait
    forever with one model thread): both cores work, and the rows and their ids stay in order."""
    second_started = threading.Event()
    first_rows: list[int] = []

    def predict(batch: ModelInput, first_row: int) -> Predictions:
        first_rows.append(first_row)
        if first_row == 10:
            second_started.set()
        if first_row == 0:
            assert second_started.wait(30), "the second chunk was not predicted concurrently"
        return regression_predictor.predict(batch)

    lines = rows(35)
    out = io.StringIO()
    summary = predict_csv(
        regression_predictor,
        io.BytesIO("\n".join([HEADER, *lines]).encode()),
        out,
        10,
        predict,
        request_id="req",
    )
    written = out.getvalue().splitlines()
    assert summary.rows == 35 and sorted(first_rows) == [0, 10, 20, 30]
    assert written[0].endswith(f",{PREDICTION_ID}")
    assert [line.split(",")[:6] for line in written[1:]] == [line.split(",") for line in lines]
    assert [line.rsplit(",", 1)[1] for line in written[1:]] == [f"req#{i}" for i in range(35)]
    assert written == predicted_with_ids(regression_predictor, lines)


def predicted_with_ids(predictor: Predictor, lines: list[str]) -> list[str]:
    out = io.StringIO()
    predict_csv(
        predictor,
        io.BytesIO("\n".join([HEADER, *lines]).encode()),
        out,
        1_000,
        request_id="req",
    )
    return out.getvalue().splitlines()


def test_the_first_error_in_the_file_is_raised_whichever_thread_fails_first(
    regression_predictor: Predictor,
) -> None:
    """Chunk 1's model fails only after chunk 2's has failed: the error raised is chunk 1's,
    as if the chunks had been scored one by one, and nothing is written past the failure."""
    second_failed = threading.Event()

    def predict(batch: ModelInput, first_row: int) -> Predictions:
        if first_row == 10:
            assert second_failed.wait(30), "chunk 2 was not predicted beside chunk 1"
            raise RuntimeError("the model failed on chunk 1")
        if first_row == 20:
            second_failed.set()
            raise RuntimeError("the model failed on chunk 2")
        return regression_predictor.predict(batch)

    out = io.StringIO()
    with pytest.raises(RuntimeError, match="chunk 1"):
        predict_csv(
            regression_predictor,
            io.BytesIO("\n".join([HEADER, *rows(60)]).encode()),
            out,
            10,
            predict,
        )
    assert len(out.getvalue().splitlines()) <= 1 + 10  # the header and chunk 0 at most


def test_reading_runs_at_most_a_few_chunks_ahead_of_writing(
    regression_predictor: Predictor,
) -> None:
    """While the first chunk's model is held, the other thread reads and predicts ahead, but no
    more than MOST_AHEAD chunks are read and not written: memory stays bounded."""
    release = threading.Event()
    started: list[int] = []

    def predict(batch: ModelInput, first_row: int) -> Predictions:
        started.append(first_row)
        if first_row == 0:
            release.wait(2)  # long enough for the other thread to run as far ahead as it may
        return regression_predictor.predict(batch)

    lines = rows(200)
    out = io.StringIO()
    thread = threading.Thread(
        target=predict_csv,
        args=(regression_predictor, io.BytesIO("\n".join([HEADER, *lines]).encode()), out, 10),
        kwargs={"predict": predict},
    )
    thread.start()
    thread.join(1)
    read_while_held = len(started)
    release.set()
    thread.join(30)
    assert read_while_held == MOST_AHEAD
    assert out.getvalue().splitlines() == predicted(regression_predictor, lines, 10)
