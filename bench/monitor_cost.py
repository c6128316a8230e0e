"""Cost of monitoring, the feedback join and request capture on the hot path, in process,
through the data plane.

    uv run python bench/monitor_cost.py [--rounds 30] [--calls 1000] [--http SECONDS]
                                        [--http-rounds 5]

Trains the default model into .bench-cache/monitor (once), then builds the service with
`create_app` once per side around the same loaded model, and alternates rounds of `calls` one-row
predictions (`DataPlane.predict_record`: the JSON record validated, the model, the prediction
metrics and the data-quality hooks, which is what `POST /predict` runs), all on one data plane
with each side's hooks in place for its round:

  off          MODELSHIP_MONITORING=false, MODELSHIP_FEEDBACK=false, no capture: none of them
  off again    the same once more: how far two identical sides come apart (the noise floor)
  monitor      drift and data quality on, feedback off
  feedback     monitor + the feedback join (MODELSHIP_FEEDBACK, on by default: the default
               service); compare it with "monitor" for the cost of remembering predictions
  capture 1%   monitor + MODELSHIP_CAPTURE_RATE=0.01 to a directory store (feedback off)
  capture 100% monitor + every row captured (the worst case)

Per side two numbers: the request path alone (what a single request's latency pays), and the
request path plus the background work those rows cause (the monitor's fold, the join's write
to its SQLite file, the capture's CSV and write, run right after each round instead of in their
threads), which is what throughput
pays once the CPU is saturated. Running the background work between rounds keeps one side's
threads from slowing another side's round; interleaving rounds keeps a busy machine from
favouring one side, and shuffling their order per round keeps any one side from always
following the same other. Then each hook alone on one decoded row, which a busy machine disturbs far
less than whole calls, as a share of the call without monitoring. Medians over the rounds.

With `--http SECONDS`, also over real HTTP: `modelship serve` (one worker, access log off) per
side, loaded by wrk with 8 connections for SECONDS, then with 1 connection for SECONDS (the
single-row p50 latency), in `--http-rounds` rounds of every side (order shuffled; the server
pinned to one core, wrk to another); printed are requests per second, the single-row p50 and
the server's CPU time per request (its threads included, the number that stays
meaningful when other processes share the machine), each as the median ratio to the "off"
side of the same round and the range of those ratios.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelship.build.training.data import BUNDLED_DATA
from modelship.build.training.options import TrainOptions
from modelship.build.training.train import train
from modelship.contracts.settings import Settings
from modelship.model import artifact
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.serving.dataplane import DataPlane
from modelship.serving.feedback import PredictionIds
from modelship.transport.http.app import create_app

ROOT = Path(__file__).resolve().parent.parent
HTTP_CONNECTIONS = 8
SHUFFLE = random.Random(0)  # the order of the sides in each round, the same every run
# data plane, and what runs off the request path: monitor, capture, feedback join (or None)
Side = tuple[DataPlane, Any, Any, Any]
REQUEST_ID = "bench-request-id"  # every call's: the join keeps one row, as a client resending


def side(predictor: Predictor, **settings: Any) -> Side:
    """The data plane, monitor, capture and feedback join of a service built as `modelship
    serve` builds it (their threads not started: the background work runs between rounds)."""
    app = create_app(build_serving(Settings(access_log=False, **settings), predictor))
    dataplane: DataPlane = app.state.dataplane
    dataplane.start()
    return dataplane, app.state.monitor, app.state.capture, dataplane.feedback


def background(monitor: Any, capture: Any, feedback: Any = None) -> None:
    """What the threads would do with the rows served so far."""
    if monitor is not None:
        monitor.fold()
    if capture is not None:
        capture.flush()
    if feedback is not None:
        feedback.flush()


def whole_calls(
    sides: dict[str, Side], record: dict[str, Any], rounds: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """µs per call of each side: the request path, and with the background work added.

    Every side runs on the same data plane, the "off" side's, with the side's data-quality
    hooks put in place for its round, so two sides differ by their hooks and nothing else (the
    hooks are the whole difference monitoring and capture make to the request path). What
    still separates two identical sides ("off" and "off again") is the machine's noise."""
    dataplane = sides["off"][0]
    request: dict[str, list[float]] = {name: [] for name in sides}
    total: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides.items())
    for _ in range(rounds):
        SHUFFLE.shuffle(order)  # no side always runs after the same other one
        for name, (own, monitor, capture, feedback) in order:
            dataplane.quality_hooks[:] = own.quality_hooks
            started = time.perf_counter()
            for _ in range(calls):
                dataplane.predict_record(record, REQUEST_ID)
            served = time.perf_counter()
            background(monitor, capture, feedback)
            done = time.perf_counter()
            request[name].append((served - started) / calls * 1e6)
            total[name].append((done - started) / calls * 1e6)
    dataplane.quality_hooks.clear()
    return request, total


def hooks_alone(
    sides: dict[str, Side], record: dict[str, Any], rounds: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """µs per one-row call of each hook alone, and of the background work it causes."""
    dataplane = sides["off"][0]
    batch = dataplane.records.decode([record])
    result = dataplane.predictor.predict(batch)
    ids = PredictionIds(REQUEST_ID)
    # The hooks as `build_serving` registered them: the join's first, then the monitor's, then
    # the capture's.
    hooks: dict[str, tuple[Callable[..., None], Any, Any, Any]] = {
        "monitor": (sides["monitor"][0].quality_hooks[0], sides["monitor"][1], None, None),
        "feedback": (sides["feedback"][0].quality_hooks[0], None, None, sides["feedback"][3]),
        **{
            name: (sides[name][0].quality_hooks[-1], None, sides[name][2], None)
            for name in ("capture 1%", "capture 100%")
        },
    }
    hook_us: dict[str, list[float]] = {name: [] for name in hooks}
    background_us: dict[str, list[float]] = {name: [] for name in hooks}
    for _ in range(rounds):
        for name, (hook, monitor, capture, feedback) in hooks.items():
            started = time.perf_counter()
            for _ in range(calls):
                hook(batch, result, ids)
            hooked = time.perf_counter()
            background(monitor, capture, feedback)
            hook_us[name].append((hooked - started) / calls * 1e6)
            background_us[name].append((time.perf_counter() - hooked) / calls * 1e6)
    return hook_us, background_us


def http_sides(store: Path) -> dict[str, dict[str, str]]:
    """The sides as the environment of `modelship serve`."""
    off = {"MODELSHIP_MONITORING": "false", "MODELSHIP_FEEDBACK": "false"}
    return {
        "off": off,
        "off again": off,
        "monitor": {"MODELSHIP_FEEDBACK": "false"},
        "feedback": {},
        "capture 1%": {
            "MODELSHIP_FEEDBACK": "false",
            "MODELSHIP_CAPTURE_RATE": "0.01",
            "MODELSHIP_CAPTURE_URI": f"file://{store}/h1",
        },
        "capture 100%": {
            "MODELSHIP_FEEDBACK": "false",
            "MODELSHIP_CAPTURE_RATE": "1",
            "MODELSHIP_CAPTURE_URI": f"file://{store}/h2",
        },
    }


def over_http(model: Path, envs: dict[str, dict[str, str]], seconds: float, runs: int) -> None:
    """Requests per second and server CPU per request of each side, over HTTP with wrk, `runs`
    rounds with every side once in each (in shuffled order); each side's figure is compared
    with the "off" side's of the same round, and the median and range of those ratios are
    printed, since a side's own figure moves by a few percent from one server start to the
    next."""
    import json
    import sys

    sys.path.insert(0, str(ROOT))  # the repository, for `bench`
    from bench import run as http_bench  # its server, wrk and CPU helpers

    card = json.loads((model / artifact.CARD_FILE).read_text())
    body = json.dumps(card["examples"][0]).encode()
    logs = Path(tempfile.mkdtemp(prefix="modelship-monitor-http-"))
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in envs}
    order = list(envs.items())
    # The server on one core and wrk (a child of this process) on the other, each side's server
    # with the same hash seed: unpinned, the scheduler and per-process hash layouts moved one
    # side's CPU per request by ±10% between rounds.
    pinned = (os.cpu_count() or 1) >= 2
    affinity = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {0})
    pin = ["taskset", "-c", "1"] if pinned else []
    for _ in range(runs):
        SHUFFLE.shuffle(order)
        for name, env in order:
            server = http_bench.modelship_serve(
                name.replace(" ", "-").replace("%", "pct"),
                model,
                body,
                {"MODELSHIP_ACCESS_LOG": "false", "PYTHONHASHSEED": "0", **env},
                prefix=tuple(pin),
            )
            script = http_bench.wrk_script(logs / f"{server.name}.lua", server)
            with http_bench.running(server, 1, logs) as (port, pid, _):
                http_bench.run_wrk(port, "/predict", script, HTTP_CONNECTIONS, 1)  # warm up
                cpu = http_bench.tree_cpu(pid)
                load = http_bench.run_wrk(port, "/predict", script, HTTP_CONNECTIONS, seconds)
                cpu = http_bench.tree_cpu(pid) - cpu
                one = http_bench.run_wrk(port, "/predict", script, 1, seconds)  # latency alone
            requests = load.rps * seconds
            results[name].append((load.rps, cpu / requests * 1e6, one.p50_ms * 1000))
    os.sched_setaffinity(0, affinity)
    print(
        f"over HTTP: modelship serve, 1 worker, wrk {HTTP_CONNECTIONS} connections x "
        f"{seconds:g} s, {runs} rounds of every side, shuffled"
        + (", server and wrk on a core each" if pinned else "")
        + "; medians, and in brackets the range of the per-round ratio to 'off'"
    )
    base = results["off"]
    for name, measured in results.items():
        served = _paired([r for r, _, _ in measured], [r for r, _, _ in base], ".0f")
        spent = _paired([c for _, c, _ in measured], [c for _, c, _ in base], ".0f")
        single = _paired([p for _, _, p in measured], [p for _, _, p in base], ".0f")
        print(
            f"  {name:<13} {served} req/s, server CPU {spent} µs per request, "
            f"single-row p50 {single} µs (1 connection)"
        )


def _paired(values: list[float], base: list[float], number: str = ".1f") -> str:
    """The median of `values` and of its ratios to `base` round by round, with their range:
    the machine's own speed drifts by more than 5% over a run, a round's sides far less."""
    ratios = sorted(v / b - 1 for v, b in zip(values, base, strict=True))
    return (
        f"{statistics.median(values):9{number}} ({statistics.median(ratios):+6.1%} "
        f"[{ratios[0]:+.1%}, {ratios[-1]:+.1%}])"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--http", type=float, default=0, metavar="SECONDS")
    parser.add_argument("--http-rounds", type=int, default=5, metavar="N")
    args = parser.parse_args()
    model = ROOT / ".bench-cache" / "monitor" / "insurance"
    if not artifact.exists(model):
        options = TrainOptions(data=BUNDLED_DATA, target="charges", output=model)
        train(options, lambda _: None)
    predictor = Predictor(artifact.load(model))
    record = predictor.card.examples[0]
    store = Path(tempfile.mkdtemp(prefix="modelship-capture-bench-"))
    off = side(predictor, monitoring=False, feedback=False)
    sides = {
        "off": off,
        "off again": off,  # the very same side once more: the noise floor
        "monitor": side(predictor, feedback=False),
        "feedback": side(predictor),
        "capture 1%": side(
            predictor, feedback=False, capture_rate=0.01, capture_uri=f"file://{store}/a"
        ),
        "capture 100%": side(
            predictor, feedback=False, capture_rate=1.0, capture_uri=f"file://{store}/b"
        ),
    }
    # As each `modelship serve` worker does once started (transport/http/app.py): without it a full
    # collection of everything training and the four services loaded, 50-100 ms, lands in a
    # random round and moves it by half.
    gc.collect()
    gc.freeze()
    request_us, total_us = whole_calls(sides, record, args.rounds, args.calls)
    hook_us, background_us = hooks_alone(sides, record, args.rounds, args.calls)
    written = sum(1 for _ in store.rglob("*.csv"))

    load = os.getloadavg()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the end; {args.rounds} rounds x {args.calls} one-row calls, interleaved"
    )
    base_request = statistics.median(request_us["off"])
    print(
        f"{'':<14}{'request path':>30}{'with background work':>38}\n{'':<14}"
        + "  (µs, median ratio to 'off' in the same round and its range)"
    )
    for name in sides:
        print(
            f"{name:<14}{_paired(request_us[name], request_us['off'])}"
            f"{_paired(total_us[name], total_us['off'])}"
        )
    print(f"hooks alone, per one-row request ({written} capture objects written in all):")
    monitor_hook = statistics.median(hook_us["monitor"])
    for name in hook_us:
        hook = statistics.median(hook_us[name])
        with_monitor = hook + (monitor_hook if name != "monitor" else 0.0)  # all run with it
        print(
            f"  {name:<13} request path {hook:6.2f} µs (with the monitor's {with_monitor:5.2f} µs "
            f"= {with_monitor / base_request:5.1%} of a call), background "
            f"{statistics.median(background_us[name]):6.2f} µs"
        )
    if args.http:
        over_http(model, http_sides(store), args.http, args.http_rounds)


if __name__ == "__main__":
    main()
