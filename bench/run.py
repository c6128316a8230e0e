"""Benchmark modelship against the servers people actually use, over real HTTP on 127.0.0.1.

    uv run python bench/run.py                 # everything (about 6 minutes; first run also
                                               # builds MLServer's own environment)
    uv run python bench/run.py --quick         # CI smoke: modelship + ceiling, seconds, no targets
    uv run python bench/run.py --servers modelship --workers 2   # modelship's single-row runs
                                               # and the overload run only (about 45 s)

Each server is started by this script from the same trained model, loaded with wrk (Debian's
`wrk`), measured, and stopped; the table is printed and, with --output, written as Markdown.
Servers: modelship (validation, metrics, JSON access log and API key all on), a tutorial-style
FastAPI + scikit-learn + pandas app, MLServer 1.7 with its scikit-learn runtime (its own venv), and
a bare FastAPI + onnxruntime app (the practical ceiling). The load generator shares the 2 cores
with the server under test; its own CPU use is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"
PYTHON = sys.executable
API_KEY = "bench-key-0123456789abcdef"
MODEL = "insurance-charges"
OVERLOAD_CLIENTS = 2_000
# After a CSV upload, the server's CPU is counted this much longer: what it does in the
# background for the upload (the feedback join's flush, the drift monitor's fold) is its cost too.
CSV_SETTLE_SECONDS = 2.0
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]


# --- measurements ----------------------------------------------------------------------------
@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers plus socket errors
    client_cpu: float  # wrk's CPU seconds per wall second (how much of the 2 cores it took)
    server_cpu_us: float = float("nan")  # server CPU per request: robust to a busy machine
    split: list[int] | None = None  # connections per server process, halfway through
    socket_errors: int = 0  # connect, read, write errors and timeouts
    non_2xx: int = 0


@dataclass
class Result:
    server: str
    workers: int
    cold_start_s: float = float("nan")
    rss_mb: float = float("nan")  # largest process after load (a worker, for multi-process)
    rss_total_mb: float = float("nan")
    one: Load | None = None
    many: Load | None = None
    batch_ms: float | None = None
    csv_s: float | None = None  # best of 3, Python's http.client on this side
    csv_curl_s: float | None = None  # best of 3, curl uploading the file as a user would
    csv_cpu_s: float | None = (
        None  # server CPU per curl upload (least of 3): robust to a busy machine
    )
    csv_growth_mb: float | None = None
    shed_at_32: float | None = None  # requests shed during the 32-client runs (want 0)
    overload: Load | None = None  # OVERLOAD_CLIENTS connections
    healthy_after: bool | None = None
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                out.extend(descendants(int(child)))
    except OSError:
        pass
    return out


def connections_per_process(pid: int, port: int) -> list[int]:
    """Established connections on `port` held by each process under `pid` that holds any,
    most first (read from /proc, as `ss -tnp` shows them)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                established.add(f"socket:[{fields[9]}]")
    counts = []
    for process in descendants(pid):
        try:
            fds = list(Path(f"/proc/{process}/fd").iterdir())
        except OSError:
            continue
        held = 0
        for fd in fds:
            with contextlib.suppress(OSError):
                held += os.readlink(fd) in established
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its living descendants."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> tuple[float, float]:
    """(largest process, total) resident memory of a process and its descendants, in MB."""
    values = [rss_mb(p) for p in descendants(pid)]
    return max(values), sum(values)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.connect()
        # As curl and wrk do: http.client sends headers and body in two writes, and without
        # TCP_NODELAY, Nagle + delayed ACKs can add tens of ms to a large POST.
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- the servers -----------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    command: Callable[[int, int], list[str]]  # (port, workers) -> argv
    env: dict[str, str]
    ready_path: str
    predict_path: str
    predict_body: bytes
    batch_body: bytes
    batch_path: str
    csv_path: str | None
    headers: dict[str, str]
    cwd: Path = ROOT


def modelship_serve(
    name: str,
    artifact: Path,
    body: bytes,
    env: dict[str, str],
    *,
    extra: tuple[str, ...] = (),
    prefix: tuple[str, ...] = (),
) -> Server:
    """`modelship serve ARTIFACT EXTRA...` (after `prefix`, e.g. a taskset) answering single
    rows of `body` at /predict, with `env` besides the caller's environment."""
    return Server(
        name=name,
        command=lambda port, workers: [
            *prefix,
            PYTHON,
            "-m",
            "modelship",
            "serve",
            "--artifact",
            str(artifact),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            *extra,
        ],
        env=env,
        ready_path="/readyz",
        predict_path="/predict",
        predict_body=body,
        batch_body=b"",
        batch_path="/predict/batch",
        csv_path=None,
        headers={"Content-Type": "application/json"},
    )


@contextmanager
def running(server: Server, workers: int, logs: Path) -> Iterator[tuple[int, int, float]]:
    """Start a server; yields (port, pid, seconds from process start to ready)."""
    port = free_port()
    log = (logs / f"{server.name}-{workers}w.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        server.command(port, workers),
        cwd=server.cwd,
        env={**os.environ, **server.env},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = started + 180
        while True:
            try:
                if request(port, "GET", server.ready_path)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{server.name} did not become ready; see {log.name}")
            time.sleep(0.01)
        yield port, process.pid, time.perf_counter() - started
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def wrk_script(path: Path, server: Server) -> Path:
    body = server.predict_body.decode()
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{body}]==]"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in server.headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_duration(text: str) -> float:
    """wrk's '512.00us' / '1.23ms' / '2.00s' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match.group(2)]
    return float(match.group(1)) * scale


def run_wrk(
    port: int, path: str, script: Path, clients: int, seconds: float, *, threads: int = 1
) -> Load:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started = time.perf_counter()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    assert process.stdout is not None
    output = process.stdout.read().decode()
    if status != 0:
        raise RuntimeError(f"wrk failed: {output}")
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)\s*$", output, re.MULTILINE))
    found_rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found_rps is None or len(percentiles) < 2:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    rps = float(found_rps.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    refused = int(non_2xx.group(1)) if non_2xx else 0
    broken = sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))) if socket_errors else 0
    return Load(
        rps=rps,
        p50_ms=parse_duration(percentiles["50"]),
        p99_ms=parse_duration(percentiles["99"]),
        errors=refused + broken,
        client_cpu=(usage.ru_utime + usage.ru_stime) / wall,
        socket_errors=broken,
        non_2xx=refused,
    )


def shed_count(port: int) -> float | None:
    """modelship's count of requests shed for overload (None for servers without it)."""
    status, body = request(port, "GET", "/metrics")
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith("modelship_requests_shed_total "):
            return float(line.split()[1])
    return 0.0 if b"modelship_" in body else None


def timed(port: int, path: str, body: bytes, headers: dict[str, str], repeats: int) -> float:
    """Median wall time in ms of one request (sent and fully read), after one warm-up."""
    status, answer = request(port, "POST", path, body, headers)
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        request(port, "POST", path, body, headers)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def csv_upload(
    port: int, pid: int, path: str, body: bytes, headers: dict[str, str], *, sample: bool
) -> tuple[float, float]:
    """(seconds, MB of memory growth of the server during it) for one CSV upload; the growth
    only with `sample` (NaN without). A timed upload is not sampled: polling /proc every 5 ms
    takes CPU from a server that uses both cores, and slowed modelship's upload by ~25%."""
    before = tree_rss(pid)[1]
    peak = before
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(pid)[1])
            time.sleep(0.005)

    sampler = threading.Thread(target=poll)
    if sample:
        sampler.start()
    started = time.perf_counter()
    try:
        status, answer = request(port, "POST", path, body, {**headers, "Content-Type": "text/csv"})
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        if sample:
            sampler.join()
    if status != 200:
        raise RuntimeError(f"CSV upload answered {status}: {answer[:300]!r}")
    expected = body.count(b"\n")
    got = answer.count(b"\n")
    if got < expected:
        raise RuntimeError(f"CSV result has {got} lines, expected {expected}")
    return elapsed, (peak - before) if sample else float("nan")


def curl_upload(port: int, path: str, csv_file: Path, headers: dict[str, str]) -> float:
    """Seconds curl takes to upload `csv_file` and read the whole answer, as a user runs it
    (`curl --data-binary @file`; its own `time_total`, process start-up excluded)."""
    argv = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total}"]
    for name, value in {**headers, "Content-Type": "text/csv"}.items():
        argv += ["-H", f"{name}: {value}"]
    argv += ["--data-binary", f"@{csv_file}", f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"curl upload failed ({done.returncode}): {done.stderr.strip()}")
    return float(done.stdout)


def measure(
    server: Server,
    workers: int,
    args: argparse.Namespace,
    cache: Path,
    heavy: bool,
) -> Result:
    result = Result(server.name, workers)
    script = wrk_script(cache / f"{server.name}.lua", server)
    logs = cache / "logs"
    logs.mkdir(exist_ok=True)
    with running(server, workers, logs) as (port, pid, cold):
        result.cold_start_s = cold
        status, answer = request(
            port, "POST", server.predict_path, server.predict_body, server.headers
        )
        if status != 200:
            raise RuntimeError(
                f"{server.name}: POST {server.predict_path} -> {status} {answer[:300]!r}"
            )
        run_wrk(port, server.predict_path, script, min(32, 4 * workers), args.warmup)
        ones, manys = [], []
        shed_before = shed_count(port)
        for _ in range(args.repeat):  # best of N: other processes on the machine only slow it
            ones.append(run_wrk(port, server.predict_path, script, 1, args.seconds))
            cpu_before = tree_cpu(pid)
            splits: list[list[int]] = []
            sampler = threading.Timer(
                args.seconds / 2,
                lambda found=splits: found.append(connections_per_process(pid, port)),
            )
            sampler.start()
            many = run_wrk(port, server.predict_path, script, 32, args.seconds)
            sampler.join()
            many.split = splits[0] if splits else None
            served = many.rps * max(1, round(args.seconds))
            if served:
                many.server_cpu_us = (tree_cpu(pid) - cpu_before) / served * 1e6
            manys.append(many)
        result.one = min(ones, key=lambda load: load.p50_ms)
        result.many = max(manys, key=lambda load: load.rps)
        shed_after = shed_count(port)
        if shed_before is not None and shed_after is not None:
            result.shed_at_32 = shed_after - shed_before
        if workers == 2 and args.overload:
            cpu_before = tree_cpu(pid)
            result.overload = run_wrk(
                port, server.predict_path, script, OVERLOAD_CLIENTS, args.seconds, threads=2
            )
            answered = result.overload.rps * max(1, round(args.seconds))
            if answered:  # a server that answered nothing in time (all timeouts) has no figure
                result.overload.server_cpu_us = (tree_cpu(pid) - cpu_before) / answered * 1e6
            time.sleep(1)
            ready = request(port, "GET", server.ready_path)[0] == 200
            status, _ = request(
                port, "POST", server.predict_path, server.predict_body, server.headers
            )
            result.healthy_after = ready and status == 200
        result.rss_mb, result.rss_total_mb = tree_rss(pid)
        if heavy:
            result.batch_ms = timed(
                port, server.batch_path, server.batch_body, server.headers, args.batch_repeats
            )
            if server.csv_path is not None:
                csv_file = cache / f"rows-{args.csv_rows}.csv"
                measure_csv(result, server, server.csv_path, port, pid=pid, csv_file=csv_file)
    print(f"  {server.name} x{workers}: {summary_line(result)}", file=sys.stderr, flush=True)
    return result


def measure_csv(
    result: Result, server: Server, path: str, port: int, *, pid: int, csv_file: Path
) -> None:
    """The CSV upload: its memory growth over 3 sampled uploads, then its time, best of 3 in
    process and best of 3 with curl, and the server's CPU per curl upload (with what it does for
    the upload in the background afterwards)."""
    csv_body = csv_file.read_bytes()
    result.csv_growth_mb = max(
        csv_upload(port, pid, path, csv_body, server.headers, sample=True)[1] for _ in range(3)
    )
    in_process = []
    for _ in range(3):  # best of 3, each after the last one's background work, as with curl
        in_process.append(csv_upload(port, pid, path, csv_body, server.headers, sample=False)[0])
        time.sleep(CSV_SETTLE_SECONDS)
    result.csv_s = min(in_process)
    timed_uploads = []
    for _ in range(3):
        cpu_before = tree_cpu(pid)
        seconds = curl_upload(port, path, csv_file, server.headers)
        time.sleep(CSV_SETTLE_SECONDS)
        timed_uploads.append((seconds, tree_cpu(pid) - cpu_before))
    result.csv_curl_s = min(seconds for seconds, _ in timed_uploads)
    result.csv_cpu_s = min(cpu for _, cpu in timed_uploads)


def summary_line(r: Result) -> str:
    assert r.one is not None and r.many is not None
    return (
        f"p50 {r.one.p50_ms:.2f} ms @1, {r.many.rps:.0f} req/s p99 {r.many.p99_ms:.1f} ms @32, "
        f"cold {r.cold_start_s:.2f} s, rss {r.rss_mb:.0f} MB"
    )


# --- preparing the model and the servers -----------------------------------------------------
def prepare_model(cache: Path, csv_rows: int) -> dict[str, Any]:
    """Train the artifact once (and keep the very scikit-learn pipeline that was exported)."""
    artifact = cache / "artifact"
    pipeline_file = cache / "pipeline.joblib"
    import joblib

    from modelship.build.training import train as training
    from modelship.build.training.data import BUNDLED_DATA
    from modelship.build.training.options import TrainOptions

    if not (artifact / "model-card.json").is_file() or not pipeline_file.is_file():
        shutil.rmtree(artifact, ignore_errors=True)
        captured: dict[str, Any] = {}
        export = training.export_onnx  # type: ignore[attr-defined]

        def capture(pipeline: Any, *rest: Any) -> Any:
            captured["pipeline"] = pipeline
            return export(pipeline, *rest)

        training.export_onnx = capture  # type: ignore[attr-defined, assignment]
        try:
            training.train(
                TrainOptions(
                    data=BUNDLED_DATA, target="charges", output=artifact, model="gradient_boosting"
                ),
                lambda _: None,
            )
        finally:
            training.export_onnx = export  # type: ignore[attr-defined]
        joblib.dump(captured["pipeline"], pipeline_file)
    card = json.loads((artifact / "model-card.json").read_text())
    rows = BUNDLED_DATA.read_text().splitlines()
    csv_file = cache / f"rows-{csv_rows}.csv"
    if not csv_file.is_file():
        pick = random.Random(7)
        data = [pick.choice(rows[1:]) for _ in range(csv_rows)]
        csv_file.write_text("\n".join([rows[0], *data]) + "\n")
    return {"artifact": artifact, "pipeline": pipeline_file, "card": card}


def ensure_mlserver(cache: Path) -> Path:
    """MLServer in its own venv (it pins an old FastAPI; uvloop<0.22 or models never load)."""
    venv = cache / "mlserver-venv"
    binary = venv / "bin" / "mlserver"
    if binary.is_file():
        return binary
    import sklearn

    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to build MLServer's environment")
    print("building MLServer's environment (once)...", file=sys.stderr, flush=True)
    subprocess.run([uv, "venv", "-q", "--python", PYTHON, str(venv)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            *MLSERVER_PINS,
            f"scikit-learn=={sklearn.__version__}",
        ],
        check=True,
    )
    return binary


def mlserver_dir(cache: Path, pipeline: Path, workers: int, port: int) -> Path:
    base = cache / f"mlserver-{workers}w"
    model_dir = base / MODEL
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pipeline, model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    (base / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": workers,
                "debug": False,
            }
        )
    )
    return base


def v2_body(card: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    inputs = []
    for feature in card["features"]:
        values = [r[feature["name"]] for r in records]
        tensor: dict[str, Any] = {"name": feature["name"], "shape": [len(values)], "data": values}
        if feature["kind"] == "categorical":
            tensor |= {"datatype": "BYTES", "parameters": {"content_type": "str"}}
        else:
            tensor["datatype"] = "FP64"
        inputs.append(tensor)
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


def build_servers(names: list[str], cache: Path, model: dict[str, Any]) -> list[Server]:
    card = model["card"]
    example = card["examples"][0]
    record = json.dumps(example).encode()
    pick = random.Random(3)
    records = [pick.choice(card["examples"]) for _ in range(1000)]
    batch = json.dumps(records).encode()
    json_headers = {"Content-Type": "application/json"}
    uvicorn_cmd = [
        PYTHON,
        "-m",
        "uvicorn",
        "--app-dir",
        str(APPS),
        "--host",
        "127.0.0.1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]

    def plain_app(name: str, env: dict[str, str]) -> Server:
        """A comparison app from bench/apps/<name>.py under plain uvicorn, same routes."""
        return Server(
            name=name,
            command=lambda port, workers: [
                *uvicorn_cmd,
                "--port",
                str(port),
                "--workers",
                str(workers),
                f"{name}:app",
            ],
            env=env,
            ready_path="/health",
            predict_path="/predict",
            predict_body=record,
            batch_path="/predict/batch",
            batch_body=batch,
            csv_path="/predict/csv",
            headers=json_headers,
        )

    servers: dict[str, Callable[[], Server]] = {
        "modelship": lambda: Server(
            name="modelship",
            command=lambda port, workers: [
                PYTHON,
                "-m",
                "modelship",
                "serve",
                "--artifact",
                str(model["artifact"]),
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "info",
            ],
            env={"MODELSHIP_API_KEY": API_KEY, "MODELSHIP_ACCESS_LOG": "true"},
            ready_path="/readyz",
            predict_path="/predict",
            predict_body=record,
            batch_path="/predict/batch",
            batch_body=batch,
            csv_path="/predict/csv",
            headers={**json_headers, "X-API-Key": API_KEY},
        ),
        "tutorial": lambda: plain_app("tutorial", {"BENCH_PIPELINE": str(model["pipeline"])}),
        "mlserver": lambda: _mlserver(cache, model, card, example, records),
        "ceiling": lambda: plain_app("ceiling", {"BENCH_ARTIFACT": str(model["artifact"])}),
    }
    return [servers[name]() for name in names]


def _mlserver(
    cache: Path,
    model: dict[str, Any],
    card: dict[str, Any],
    example: dict[str, Any],
    records: list[dict[str, Any]],
) -> Server:
    binary = ensure_mlserver(cache)

    def command(port: int, workers: int) -> list[str]:
        return [str(binary), "start", str(mlserver_dir(cache, model["pipeline"], workers, port))]

    return Server(
        name="mlserver",
        command=command,
        env={},
        ready_path=f"/v2/models/{MODEL}/ready",
        predict_path=f"/v2/models/{MODEL}/infer",
        predict_body=v2_body(card, [example]),
        batch_path=f"/v2/models/{MODEL}/infer",
        batch_body=v2_body(card, records),
        csv_path=None,
        headers={"Content-Type": "application/json"},
    )


# --- in-process floor ------------------------------------------------------------------------
def floor(model: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median µs of one single-row prediction without HTTP: ONNX alone, with our validation,
    and scikit-learn on a one-row DataFrame (what the tutorial app does per request)."""
    import joblib
    import pandas as pd

    from modelship.model import artifact
    from modelship.model.codecs.records import RecordsCodec
    from modelship.model.predictor import Predictor

    predictor = Predictor(artifact.load(model["artifact"]))
    example = model["card"]["examples"][0]
    batch = RecordsCodec(predictor.schema).decode([example])
    pipeline = joblib.load(model["pipeline"])

    def median_us(call: Callable[[], object], n: int) -> float:
        for _ in range(min(n, 50)):
            call()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e6

    return {
        "onnx_us": median_us(lambda: predictor.predict(batch), repeats),
        "validate_and_predict_us": median_us(
            lambda: predictor.predict(RecordsCodec(predictor.schema).decode([example])), repeats
        ),
        "sklearn_dataframe_us": median_us(
            lambda: pipeline.predict(pd.DataFrame([example])), max(20, repeats // 50)
        ),
    }


# --- report ----------------------------------------------------------------------------------
def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(results: list[Result], floors: dict[str, float], args: argparse.Namespace) -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}; load generator wrk (1 thread) on the same cores. "
        f"Load average at start {args.load_at_start}, at end {load} (1, 5, 15 min; anything "
        "above ~1.2 means other processes shared the cores).",
        f"Runs: {args.seconds:g} s per load level after {args.warmup:g} s warm-up, best of "
        f"{args.repeat}; "
        f"batch = median of {args.batch_repeats}; CSV = {args.csv_rows:,} rows, best of 3 "
        "uploads (memory growth: the largest of 3 other uploads, sampled every 5 ms; the timed "
        "ones are not sampled).",
        "",
        "| server | workers | p50 @1 client (ms) | p99 @1 (ms) | req/s @1 | req/s @32 clients "
        "| p99 @32 (ms) | server CPU per request @32 (µs) | errors | wrk CPU @32 "
        "| connections per process @32 | cold start (s) | RSS per worker (MB) | RSS total (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        assert r.one is not None and r.many is not None
        lines.append(
            f"| {r.server} | {r.workers} | {r.one.p50_ms:.2f} | {r.one.p99_ms:.2f} "
            f"| {r.one.rps:,.0f} | {r.many.rps:,.0f} | {r.many.p99_ms:.1f} "
            f"| {r.many.server_cpu_us:.0f} | {r.one.errors + r.many.errors} "
            f"| {r.many.client_cpu:.2f} "
            f"| {'/'.join(map(str, r.many.split)) if r.many.split else 'n/a'} "
            f"| {r.cold_start_s:.2f} | {r.rss_mb:.0f} | {r.rss_total_mb:.0f} |"
        )
    lines += [
        "",
        f"| server (1 worker) | 1,000-row JSON batch (ms) | {args.csv_rows:,}-row CSV upload (s) "
        "| same, with curl (s) | server CPU per curl upload (s) "
        "| server memory growth during CSV (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.batch_ms is not None:
            lines.append(
                f"| {r.server} | {r.batch_ms:.1f} | {fmt(r.csv_s, '.2f')} "
                f"| {fmt(r.csv_curl_s, '.2f')} | {fmt(r.csv_cpu_s, '.2f')} "
                f"| {fmt(r.csv_growth_mb, '.0f')} |"
            )
    overloaded = [r for r in results if r.overload is not None]
    if overloaded:
        lines += [
            "",
            f"Overload: {OVERLOAD_CLIENTS:,} connections, 2 workers, single-row POSTs for "
            f"{args.seconds:g} s (503s are the shed answers; want p99 <= 250 ms, no socket errors, "
            "healthy after).",
            "",
            "| server | answers/s | p50 (ms) | p99 (ms) | 503 / non-2xx | socket errors "
            "| server CPU per answer (µs) | wrk CPU | healthy after | shed @32 clients |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in overloaded:
            o = r.overload
            assert o is not None
            shed32 = "n/a" if r.shed_at_32 is None else f"{r.shed_at_32:.0f}"
            lines.append(
                f"| {r.server} | {o.rps:,.0f} | {o.p50_ms:.1f} | {o.p99_ms:.1f} | {o.non_2xx:,} "
                f"| {o.socket_errors:,} | {o.server_cpu_us:.0f} | {o.client_cpu:.2f} "
                f"| {'yes' if r.healthy_after else 'NO'} | {shed32} |"
            )
    lines += [
        "",
        "In-process floor, one row, no HTTP (median): "
        f"onnxruntime {floors['onnx_us']:.0f} µs; modelship validation + onnxruntime "
        f"{floors['validate_and_predict_us']:.0f} µs; scikit-learn pipeline on a one-row "
        f"DataFrame {floors['sklearn_dataframe_us']:,.0f} µs.",
    ]
    by = {(r.server, r.workers): r for r in results}
    ours = by.get(("modelship", 2)) or by.get(("modelship", 1))
    if ours is not None and ours.many is not None:
        ratios = []
        for other in ("tutorial", "mlserver", "ceiling"):
            theirs = by.get((other, ours.workers))
            if theirs is not None and theirs.many is not None:
                ratios.append(f"{ours.many.rps / theirs.many.rps:.2f}× {other}")
        if ratios:
            lines += [
                "",
                f"modelship at 32 clients, {ours.workers} worker(s): " + ", ".join(ratios) + ".",
            ]
    csv_ours, csv_tutorial = by.get(("modelship", 1)), by.get(("tutorial", 1))
    if csv_ours and csv_tutorial and csv_ours.csv_s and csv_tutorial.csv_s:
        lines += [
            "",
            f"CSV upload: modelship is {csv_tutorial.csv_s / csv_ours.csv_s:.2f}× as fast as the "
            "tutorial server (pandas)"
            + (
                f", {csv_tutorial.csv_curl_s / csv_ours.csv_curl_s:.2f}× timed with curl."
                if csv_ours.csv_curl_s and csv_tutorial.csv_curl_s
                else "."
            )
            + (
                f" Server CPU per upload: {csv_ours.csv_cpu_s:.2f} s against "
                f"{csv_tutorial.csv_cpu_s:.2f} s."
                if csv_ours.csv_cpu_s and csv_tutorial.csv_cpu_s
                else ""
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds, 2 servers")
    parser.add_argument(
        "--servers",
        default="modelship,ceiling,tutorial,mlserver",
        help="comma-separated: modelship, tutorial, mlserver, ceiling",
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to run (1,2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load level")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds")
    parser.add_argument(
        "--repeat", type=int, default=1, help="load runs per level; the best is reported"
    )
    parser.add_argument("--batch-repeats", type=int, default=20)
    parser.add_argument("--csv-rows", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench-cache")
    parser.add_argument("--output", type=Path, help="also write the table (Markdown) here")
    parser.add_argument(
        "--no-overload",
        dest="overload",
        action="store_false",
        help=f"skip the {OVERLOAD_CLIENTS:,}-connection run (2 workers)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.servers, args.workers, args.seconds, args.warmup = "modelship,ceiling", "1", 1, 1
        args.batch_repeats, args.csv_rows = 3, 5_000
    for program in ("wrk", "curl"):  # the load, and the CSV upload timed as a user runs it
        if shutil.which(program) is None:
            print(f"bench: {program} is needed (apt-get install {program})", file=sys.stderr)
            return 2
    args.load_at_start = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    args.cache.mkdir(parents=True, exist_ok=True)
    model = prepare_model(args.cache, args.csv_rows)
    servers = build_servers(args.servers.split(","), args.cache, model)
    worker_counts = [int(w) for w in args.workers.split(",")]
    results = []
    for server in servers:
        for workers in worker_counts:
            results.append(measure(server, workers, args, args.cache, heavy=workers == 1))
    floors = floor(model, 200 if args.quick else 2000)
    table = report(results, floors, args)
    print(table)
    (args.cache / "results.json").write_text(
        json.dumps(
            [
                r.__dict__
                | {
                    "one": r.one.__dict__ if r.one else None,
                    "many": r.many.__dict__ if r.many else None,
                    "overload": r.overload.__dict__ if r.overload else None,
                }
                for r in results
            ]
            + [floors],
            indent=2,
        )
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
