"""Start `modelship serve` as a real process on 127.0.0.1 and wait until it is ready."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

_given: set[int] = set()
_giving = threading.Lock()


def free_port() -> int:
    """A port nothing listens on, never one this process gave before: servers started at once
    from threads could be handed the same one (the probe's port is free again once it closes),
    and then one server answered for both (a CI failure: one import's /model served the
    other's card)."""
    with _giving:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]

    def predict_csv(self, text: str, timeout: float = 60) -> str:
        """POST /predict/csv with `text`; the CSV it answers (a 200 asserted)."""
        answer = httpx.post(
            f"{self.url}/predict/csv",
            content=text,
            headers={"Content-Type": "text/csv"},
            timeout=timeout,
        )
        assert answer.status_code == 200, answer.text
        return answer.text

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Kubernetes and ECS send, then wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def running_server(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    ready_within: float = 120,
    python: str = sys.executable,
) -> Iterator[Server]:
    """`python -m modelship serve ARGS` on a free port; `python` may be another environment's."""
    port = free_port()
    process = subprocess.Popen(
        [
            python,
            "-m",
            "modelship",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group: a test that ends without stopping the server kills the workers
        # too, not only the supervisor (orphaned workers keep listening and load the machine).
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"server exited early:\n{process.stdout.read() if process.stdout else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            process.kill()
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"server not ready within {ready_within} s:\n{output}")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left, workers too
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


@contextlib.contextmanager
def capturing_server(
    artifact: Path, store_uri: str, env: dict[str, str], cwd: Path, **settings: str
) -> Iterator[Server]:
    """`modelship serve` with two workers capturing every row it serves to `store_uri`, with
    the other `settings` (capture_batch_rows="40": MODELSHIP_CAPTURE_BATCH_ROWS=40)."""
    variables = {
        "MODELSHIP_CAPTURE_RATE": "1",
        "MODELSHIP_CAPTURE_URI": store_uri,
        "MODELSHIP_ACCESS_LOG": "false",
        **{f"MODELSHIP_{name.upper()}": value for name, value in settings.items()},
    }
    with running_server(
        "--artifact", str(artifact), "--workers", "2", cwd=cwd, env={**env, **variables}
    ) as server:
        yield server
