"""State shared by the workers of one server: one SQLite file in a per-server directory.

`modelship serve` creates a fresh directory before it starts the workers (as it does for the
Prometheus samples) and names it in MODELSHIP_STATE_DIR; every worker opens the same files in
it. SQLite in WAL mode lets any number of processes read while one writes, and a transaction
(`BEGIN IMMEDIATE`) makes a read-then-write atomic across them, so the state is correct whichever
worker answers, and outlives a worker that dies. A server built in-process (the tests, one
worker) gets a private temporary directory instead.

What lives here today: the predictions awaiting their labels and the labelled rows
(`modelship.serving.feedback`). Anything else the workers must agree on belongs in a table of
its own beside them, through `connect`.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelship.errors import ModelshipError

STATE_DIR_ENV = "MODELSHIP_STATE_DIR"
# The write-ahead log is cut back to this after each checkpoint: the directory is /tmp on the
# stacks, a small volume (or memory) shared with the model cache and the metrics files.
WAL_LIMIT_BYTES = 4 * 1024 * 1024
# A writer waits this long for another worker's transaction before giving up (transactions here
# last milliseconds; the bound only matters if a worker is wedged holding one).
BUSY_TIMEOUT_MS = 10_000


def connect(path: Path) -> sqlite3.Connection:
    """A connection to a shared database file, set up for several processes at once.

    `synchronous=NORMAL` in WAL mode: a power loss can lose the last transactions, never corrupt
    the file; the state is rebuilt by traffic anyway (it does not outlive the server).
    """
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    return connection


class SharedStateError(ModelshipError):
    """The shared file cannot be read or written (the directory full, say): a 503, retried."""

    status_code = 503
    error_type = "unavailable"


@contextmanager
def sqlite_errors(path: Path, doing: str) -> Iterator[None]:
    """SQLite's errors as one `SharedStateError` naming the file and what failed."""
    try:
        yield
    except sqlite3.Error as exc:
        raise SharedStateError(f"cannot {doing} {path}: {exc}; retry later") from exc


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """`BEGIN IMMEDIATE` ... `COMMIT` (`ROLLBACK` on an error): the write lock is taken at the
    start, so a read-then-write inside is atomic across the workers."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class StateDirectory:
    """The server's shared directory, or a private one this process removes when it is done."""

    def __init__(self, configured: Path | None) -> None:
        self._private: tempfile.TemporaryDirectory[str] | None = None
        if configured is None:
            self._private = tempfile.TemporaryDirectory(prefix="modelship-state-")
            configured = Path(self._private.name)
        else:  # a directory the user named: made if missing, an unusable one said plainly
            try:
                configured.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ModelshipError(
                    f"setting MODELSHIP_STATE_DIR = '{configured}': cannot make the directory "
                    f"({exc.strerror or exc})"
                ) from exc
        self.path = configured

    def close(self) -> None:
        if self._private is not None:
            self._private.cleanup()
            self._private = None
