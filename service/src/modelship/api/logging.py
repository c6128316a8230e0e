"""Structured logs: one JSON object per line, with the id of the request being served."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

import orjson

# The id of the request being handled; copied into threads by run_in_threadpool.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id", ...extra fields}` on one line.

    Written for the access log's rate (one line per request): extra fields are found with one
    set difference and the timestamp text is reused within a second.
    """

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        out: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            out["request_id"] = rid
        for key in fields.keys() - _STANDARD:
            out[key] = fields[key]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(created % 1 * 1000):03d}Z"


def tune_logging() -> None:
    """Skip what our JSON lines never show (caller frame, thread and process names): the
    documented logging optimisations, worth ~10 µs per log line, paid on every request."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn and us: JSON lines on stderr."""
    tune_logging()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "modelship.api.logging.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "modelship": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            # Requests are logged by modelship.access, with their id and route.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
