"""Structured logs: one JSON object per line, with the id of the request being served."""

from __future__ import annotations

import asyncio
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


class JsonLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines to a stream. Access lines (`write_line`, on the event loop) are joined into one
    write per turn of the loop, like nginx's buffered access_log, so a busy server makes one
    system call for many requests. Other records are written at once, after any pending lines,
    so nothing is left in the buffer when the server logs its last line and exits."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.lock:  # type: ignore[union-attr]
                self._write([*self._take(), line])
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            with self.lock:  # type: ignore[union-attr]
                self._write([*self._take(), line])
            return
        self._pending.append(line)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)

    def _take(self) -> list[str]:
        lines, self._pending = self._pending, []
        return lines

    def _drain(self) -> None:
        self._scheduled = False
        with self.lock:  # type: ignore[union-attr]
            self._write(self._take())

    def _write(self, lines: list[str]) -> None:
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write(self._take())
            super().flush()


def access_line(fields: dict[str, Any]) -> str:
    """The access-log line of a request: the same JSON shape as JsonFormatter's, built directly
    (a LogRecord and its formatting cost several times more, on every request:
    docs/benchmarks.md#what-changed-and-why)."""
    now = time.time()
    out: dict[str, Any] = {
        "ts": _line_timestamp(now),
        "level": "info",
        "logger": "modelship.access",
        "message": f"{fields['method']} {fields['path']} {fields['status']}",
    }
    rid = request_id.get()
    if rid is not None:
        out["request_id"] = rid
    out.update(fields)
    return orjson.dumps(out).decode()


_LINE_FORMATTER = JsonFormatter()


def _line_timestamp(now: float) -> str:
    return _LINE_FORMATTER._timestamp(now)


def fast_handler(logger: logging.Logger) -> JsonLinesHandler | None:
    """The JsonLinesHandler that would receive this logger's INFO lines, if that is all it has."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            handlers = current.handlers
            only = handlers[0]
            if (
                len(handlers) == 1
                and isinstance(only, JsonLinesHandler)
                and only.level <= logging.INFO
                and not only.filters
            ):
                return only
            return None
        if not current.propagate:
            return None
        current = current.parent
    return None


def tune_logging() -> None:
    """Skip what our JSON lines never show (caller frame, thread and process names): the
    documented logging optimisations, paid on every request otherwise."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn and us: JSON lines on stderr."""
    tune_logging()
    handler = {
        "()": "modelship.transport.http.logging.JsonLinesHandler",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": handler},
        "loggers": {
            "modelship": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            # Requests are logged by modelship.access, with their id and route.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
