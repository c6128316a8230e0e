"""Operations: Prometheus metrics scraped and parsed, request ids, JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelship.serving import telemetry
from modelship.serving.telemetry import REQUESTS
from modelship.transport.http.logging import (
    JsonFormatter,
    JsonLinesHandler,
    fast_handler,
    log_config,
    request_id,
)


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_predictions_and_batches(client: TestClient) -> None:
    example = client.get("/model/examples/0").json()
    before = scrape(client)
    assert client.post("/predict", json=example).status_code == 200
    assert client.post("/predict/batch", json=[example] * 7).status_code == 200
    assert client.post("/predict", json={"age": 1}).status_code == 422
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"method": "POST", "route": "/predict", "status": "200"}
    assert delta("modelship_http_requests_total", **ok) == 1
    assert delta("modelship_http_request_duration_seconds_count", **ok) == 1
    assert delta("modelship_http_request_duration_seconds_bucket", **ok, le="+Inf") == 1
    assert delta("modelship_http_request_duration_seconds_sum", **ok) > 0
    assert (
        delta("modelship_http_requests_total", method="POST", route="/predict", status="422") == 1
    )
    assert (
        delta("modelship_http_requests_total", method="GET", route="unmatched", status="404") == 1
    )
    assert delta("modelship_predictions_total") == 8
    assert delta("modelship_batch_rows_count") == 2
    assert delta("modelship_batch_rows_bucket", le="1.0") == 1


def test_model_info_carries_version_and_training_data_hash(client: TestClient) -> None:
    card = client.get("/model").json()
    samples = scrape(client)
    info = {
        dict(labels)["version"]: (dict(labels), sample_value)
        for (name, labels), sample_value in samples.items()
        if name == "modelship_model_info"
    }
    labels, sample_value = info[card["version"]]
    assert sample_value == 1
    assert labels["training_data_sha256"] == card["training_data"]["sha256"]
    assert labels["name"] == card["name"]


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    unsafe = client.get("/healthz", headers={"X-Request-ID": 'bad"id\\x'}).headers["x-request-id"]
    assert unsafe != 'bad"id\\x'
    assert len(unsafe) == 32


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("modelship")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_access_log_is_json_with_request_id(client: TestClient, log_lines: io.StringIO) -> None:
    example = client.get("/model/examples/0").json()
    client.post("/predict", json=example, headers={"X-Request-ID": "abc-123"})
    records = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    mine = [r for r in records if r.get("request_id") == "abc-123"]
    assert len(mine) == 1
    line = mine[0]
    assert line["logger"] == "modelship.access"
    assert line["level"] == "info"
    assert line["route"] == "/predict"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["ts"].endswith("Z")


def test_log_lines_inside_a_request_carry_its_id() -> None:
    formatter = JsonFormatter()
    record = logging.makeLogRecord({"name": "modelship", "msg": "hello %s", "args": ("you",)})
    token = request_id.set("rid-1")
    try:
        line = json.loads(formatter.format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "hello you"
    assert line["request_id"] == "rid-1"
    assert "request_id" not in json.loads(formatter.format(record))


def test_metrics_can_be_switched_off(regression_artifact: object) -> None:
    from pathlib import Path

    from tests.service.conftest import make_client

    assert isinstance(regression_artifact, Path)
    with make_client(regression_artifact, metrics=False) as client:
        assert client.get("/metrics").status_code == 404


def test_configured_server_logging_writes_json_lines(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The logging set-up `modelship serve` uses: access lines bypass LogRecords, same shape."""
    stream = io.StringIO()
    handler = JsonLinesHandler(stream)
    logger = logging.getLogger("modelship")
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    old_level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not setattr: it also clears isEnabledFor's cache
    try:
        assert fast_handler(logging.getLogger("modelship.access")) is handler
        client.get("/healthz", headers={"X-Request-ID": "fast-1"})
        logging.getLogger("modelship.test").info("plain %s", "record")
        handler.flush()
    finally:
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = next(line for line in lines if line.get("request_id") == "fast-1")
    assert access["logger"] == "modelship.access"
    assert access["message"] == "GET /healthz 200"
    assert access["route"] == "/healthz"
    assert access["ts"].endswith("Z")
    assert any(line["message"] == "plain record" for line in lines)


def test_log_config_is_valid_for_dictconfig() -> None:
    import logging.config

    config = log_config("info")
    logging.config.dictConfig(config)
    try:
        assert isinstance(fast_handler(logging.getLogger("modelship.access")), JsonLinesHandler)
    finally:
        for name in ("modelship", "uvicorn"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True


def test_many_observations_written_at_once_expose_as_observed_one_by_one() -> None:
    # The end-of-turn write goes through prometheus_client's histogram fields: the exposition
    # must be the one `observe` gives, value by value, on bounds, between them and past the last.
    values = [0.0001, 0.0005, 0.0005, 0.003, 0.07, 0.07, 9.9, 11.0, 0.25]
    exposed = []
    for write in ("one by one", "at once"):
        registry = CollectorRegistry()
        histogram = Histogram("h", "h", buckets=(0.0005, 0.001, 0.1, 0.25, 10), registry=registry)
        if write == "one by one":
            for value in values:
                histogram.observe(value)
        else:
            telemetry.observe_all(histogram, values)
        exposed.append(generate_latest(registry).split(b"\n# HELP h_created")[0])
    assert exposed[0] == exposed[1]
    assert b'h_bucket{le="0.0005"} 3.0' in exposed[1]
    assert telemetry._BULK  # the pinned prometheus_client has the fields: the fast form is used


def test_counts_of_one_event_loop_turn_reach_metrics_at_its_end() -> None:
    before = REQUESTS.labels("GET", "/turn-test", "200")._value.get()

    async def answers() -> float:
        for _ in range(5):
            telemetry.request_metrics("GET", "/turn-test", 200).record(0.001)
        pending = REQUESTS.labels("GET", "/turn-test", "200")._value.get()
        await asyncio.sleep(0)  # the turn is over
        return float(pending)

    assert asyncio.run(answers()) == before  # not yet written within the turn
    assert REQUESTS.labels("GET", "/turn-test", "200")._value.get() == before + 5
