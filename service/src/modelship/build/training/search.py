"""The model search: every candidate cross-validated, fitted, exported and weighed, in a budget.

For each candidate, in the menu's order, while the time budget lasts (and past it until one
candidate has been exported, so that the search always ends with a model):
  1. its cross-validation folds and its fit on the whole training split run as parallel tasks,
     one per core, in threads (the estimators' heavy parts are native code that releases the
     GIL; worker processes would each import scikit-learn first, which costs more than small
     folds), every native thread pool held to one thread (no nested pools fighting for cores);
  2. the full fit is exported to ONNX and checked for parity, like the final model always was;
  3. its footprint (size, latency, serving memory) is measured in a fresh serving process, in
     the background while the next candidate trains.
Then the winner is chosen among the candidates that fit the footprint budget (`select`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from modelship.build.measure import measure_footprint
from modelship.contracts.card import Task
from modelship.contracts.footprint import Footprint
from modelship.errors import ModelshipError, TrainingError

Say = Callable[[str], None]

# Cross-validation scorers per task: (column title, scikit-learn scorer, sign to report it with).
# The first is the one the search ranks by.
CV_SCORERS: dict[Task, list[tuple[str, str, float]]] = {
    "regression": [
        ("r2", "r2", 1.0),
        ("mae", "neg_mean_absolute_error", -1.0),
        ("rmse", "neg_root_mean_squared_error", -1.0),
    ],
    "classification": [
        ("macro_f1", "f1_macro", 1.0),
        ("accuracy", "accuracy", 1.0),
        ("log_loss", "neg_log_loss", -1.0),
    ],
}


def cores() -> int:
    """CPUs this process may use (a container's affinity, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    """The search's budgets: time for the whole search, and what the chosen model may cost."""

    time_budget_seconds: float
    max_model_mb: float
    max_serving_mb: float

    def excess(self, footprint: Footprint) -> str | None:
        """Why a model does not fit, or None when it does."""
        reasons = []
        if footprint.model_mb > self.max_model_mb:
            reasons.append(
                f"model {footprint.model_mb:.1f} MB > --max-model-mb {self.max_model_mb:g}"
            )
        if footprint.serving_rss_mb > self.max_serving_mb:
            reasons.append(
                f"worker {footprint.serving_rss_mb:.0f} MB > --max-serving-mb "
                f"{self.max_serving_mb:g}"
            )
        return "; ".join(reasons) or None


@dataclass
class Result:
    """One candidate's outcome. `status` is "fits", "chosen", or why it is out of the race."""

    key: str
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "fits"
    artifact: Path | None = None
    footprint: Footprint | None = None
    pending: Future[Footprint] | None = None

    def score(self, title: str) -> float:
        return self.scores[title]

    def row(self, metrics: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"model": self.key}
        for title in metrics:
            if title in self.scores:
                row[title] = self.scores[title]
                row[f"{title}_std"] = self.scores[f"{title}_std"]
        row["seconds"] = round(self.seconds, 2)
        if self.footprint is not None:
            row["model_mb"] = round(self.footprint.model_mb, 3)
            row["serving_rss_mb"] = self.footprint.serving_rss_mb
            row["latency_row_ms"] = self.footprint.latency_row_ms
            row["latency_batch_ms"] = self.footprint.latency_batch_ms
        row["status"] = self.status
        return row


def folds_for(rows: int, requested: int | None) -> int:
    """5 folds, or 3 on 10,000+ training rows (each fold is then large enough to judge by)."""
    if requested is not None:
        return requested
    return 3 if rows >= 10_000 else 5


def splitter(task: Task, folds: int, seed: int) -> KFold | StratifiedKFold:
    if task == "classification":
        return StratifiedKFold(folds, shuffle=True, random_state=seed)
    return KFold(folds, shuffle=True, random_state=seed)


def fit_quietly(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> Pipeline:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(x, y)
    return pipeline


def _task(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: pd.Series,
    fold: tuple[Any, Any] | None,
    scorers: list[tuple[str, str, float]],
) -> tuple[Pipeline | None, dict[str, float]]:
    """One parallel task: a fold (fit on its training part, score the rest) or the full fit."""
    # OpenMP's thread count is a per-thread setting: the search's process-wide limit does not
    # reach this worker thread, where histogram boosting would start a team of one thread per
    # core in each task (on a busy 2-core machine that made it ten times slower).
    with threadpool_limits(limits=1, user_api="openmp"):
        if fold is None:
            return fit_quietly(pipeline, x, y), {}
        train_rows, test_rows = fold
        fitted = fit_quietly(pipeline, x.iloc[train_rows], y.iloc[train_rows])
        x_test, y_test = x.iloc[test_rows], y.iloc[test_rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return None, {
                title: sign * float(get_scorer(name)(fitted, x_test, y_test))
                for title, name, sign in scorers
            }


@dataclass
class Search:
    """Runs the candidates in order within `limits`; `export` turns a full fit into an artifact."""

    task: Task
    x: pd.DataFrame
    y: pd.Series
    folds: int
    seed: int
    limits: Limits
    export: Callable[[str, Pipeline, Path], object]
    say: Say
    scratch: Path
    workers: int = field(default_factory=cores)
    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def run(self, pipelines: list[tuple[str, Pipeline]]) -> list[Result]:
        started = time.perf_counter()
        deadline = started + self.limits.time_budget_seconds
        scorers = CV_SCORERS[self.task]
        folds = list(splitter(self.task, self.folds, self.seed).split(self.x, self.y))
        self.say(
            f"Comparing {len(pipelines)} models with {self.folds}-fold cross-validation, "
            f"{self.workers} task(s) at a time, within {self.limits.time_budget_seconds:g} s:"
        )
        with (
            # Process-wide, set once: per-task limits would restore each other's settings.
            threadpool_limits(limits=1),
            ThreadPoolExecutor(max_workers=1) as measuring,
            Parallel(n_jobs=self.workers, backend="threading") as parallel,
        ):
            for number, (key, pipeline) in enumerate(pipelines, 1):
                if self._has_model() and time.perf_counter() >= deadline:
                    self.skipped.extend(k for k, _ in pipelines[number - 1 :])
                    break
                result = self._candidate(key, pipeline, folds, scorers, parallel, deadline)
                self.results.append(result)
                if result.artifact is not None:
                    result.pending = measuring.submit(measure_footprint, result.artifact)
                self._report(number, len(pipelines), result, scorers[0][0])
            for result in self.results:
                self._collect(result)
            if self.skipped:
                self.say(
                    f"Time budget of {self.limits.time_budget_seconds:g} s spent: not tried "
                    f"{', '.join(self.skipped)} (raise --time-budget to try them)"
                )
        self.seconds = time.perf_counter() - started
        return self.results

    def _has_model(self) -> bool:
        """Whether a candidate so far was exported: until one is, the budget does not stop the
        search (a first candidate that cannot be exported must not leave the user with nothing)."""
        return any(result.artifact is not None for result in self.results)

    def _candidate(  # noqa: PLR0917 - private, called once
        self,
        key: str,
        pipeline: Pipeline,
        folds: list[tuple[Any, Any]],
        scorers: list[tuple[str, str, float]],
        parallel: Parallel,
        deadline: float,
    ) -> Result:
        started = time.perf_counter()
        # The full fit first: it is the longest task, so the first round predicts the rest.
        tasks: list[tuple[Any, Any] | None] = [None, *folds]
        outputs: list[tuple[Pipeline | None, dict[str, float]]] = []
        for first in range(0, len(tasks), self.workers):
            batch = tasks[first : first + self.workers]
            round_started = time.perf_counter()
            outputs += parallel(
                delayed(_task)(clone(pipeline), self.x, self.y, fold, scorers) for fold in batch
            )
            left = math.ceil((len(tasks) - first - len(batch)) / self.workers)
            needed = (time.perf_counter() - round_started) * left
            if left and self._has_model() and time.perf_counter() + needed > deadline:
                return Result(
                    key,
                    seconds=time.perf_counter() - started,
                    status=f"stopped: needs about {needed:.0f} s more, past the time budget",
                )
        fitted = outputs[0][0]
        assert fitted is not None
        result = Result(key)
        for title, _, _ in scorers:
            values = [scores[title] for _, scores in outputs[1:]]
            result.scores[title] = sum(values) / len(values)
            mean = result.scores[title]
            result.scores[f"{title}_std"] = math.sqrt(
                sum((v - mean) ** 2 for v in values) / len(values)
            )
        try:
            self.export(key, fitted, self.scratch / key)
            result.artifact = self.scratch / key
        except ModelshipError as exc:
            result.status = f"not exportable: {exc.message}"
        result.seconds = time.perf_counter() - started
        return result

    def _collect(self, result: Result) -> None:
        if result.pending is None:
            return
        try:
            result.footprint = result.pending.result()
        except ModelshipError as exc:
            result.status = f"cannot be served: {exc.message}"
            result.artifact = None
            return
        finally:
            result.pending = None
        excess = self.limits.excess(result.footprint)
        if excess:
            result.status = f"too large: {excess}"

    def _report(self, number: int, total: int, result: Result, main: str) -> None:
        shown = (
            f"{main} {result.scores[main]:.4f} ± {result.scores[main + '_std']:.4f}"
            if result.scores
            else result.status
        )
        self.say(f"  [{number}/{total}] {result.key:<24} {shown}  ({result.seconds:.1f} s)")


@dataclass(frozen=True)
class Choice:
    winner: Result
    reason: str
    excluded: list[str]


def noise(best: Result, other: Result, metric: str, folds: int) -> float:
    """The standard error of the difference of two mean CV scores: both candidates' fold spread
    counts (a steady best and a noisy runner-up are not told apart by the best's spread alone)."""
    return math.sqrt(best.score(f"{metric}_std") ** 2 + other.score(f"{metric}_std") ** 2) / (
        math.sqrt(folds)
    )


def select(results: list[Result], task: Task, folds: int, limits: Limits) -> Choice:
    """The best CV score among the candidates that fit; of those whose score is within one
    standard error of the difference from it, the smallest model (a difference that small is
    fold-to-fold noise, the size is not)."""
    main = CV_SCORERS[task][0][0]
    fitting = [r for r in results if r.status == "fits" and r.footprint is not None]
    excluded = [f"{r.key} ({r.status})" for r in results if r.status.startswith("too large")]
    if not fitting:
        measured = [r for r in results if r.footprint is not None]
        if not measured:
            raise TrainingError(
                "no candidate could be exported and served: "
                + "; ".join(f"{r.key} {r.status}" for r in results)
            )
        smallest = min(measured, key=lambda r: r.footprint.serving_rss_mb if r.footprint else 0)
        detail = (
            f"; the smallest, {smallest.key}, needs {smallest.footprint.summary()}"
            if smallest.footprint
            else ""
        )
        raise TrainingError(
            f"no candidate fits the footprint budget (--max-model-mb {limits.max_model_mb:g}, "
            f"--max-serving-mb {limits.max_serving_mb:g}){detail}; raise the limits or give "
            "the containers more memory"
        )
    best = max(fitting, key=lambda r: r.score(main))
    close = [r for r in fitting if best.score(main) - r.score(main) <= noise(best, r, main, folds)]
    winner = min(close, key=lambda r: (r.footprint.model_bytes if r.footprint else 0, r.key))
    if winner is best:
        reason = (
            f"{winner.key} has the best cross-validated {main} ({best.score(main):.4f}) "
            "of the models that fit"
        )
    else:
        assert best.footprint is not None and winner.footprint is not None
        reason = (
            f"{winner.key} ({main} {winner.score(main):.4f}) is within one standard error of "
            f"the difference ({noise(best, winner, main, folds):.4f}) of the best, {best.key} "
            f"({best.score(main):.4f}), and "
            f"smaller ({winner.footprint.model_mb:.1f} MB vs {best.footprint.model_mb:.1f} MB)"
        )
    winner.status = "chosen"
    return Choice(winner=winner, reason=reason, excluded=excluded)


def leaderboard_rows(results: list[Result], task: Task) -> list[dict[str, Any]]:
    """Ranked by the main CV score; candidates without scores (stopped) come last."""
    metrics = [title for title, _, _ in CV_SCORERS[task]]
    main = metrics[0]
    ordered = sorted(results, key=lambda r: -r.scores[main] if r.scores else math.inf)
    rows = []
    for rank, result in enumerate(ordered, 1):
        row = result.row(metrics)
        row["rank"] = rank
        rows.append(row)
    return rows


def leaderboard_table(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    header = (
        f"  {'rank':>4}  {'model':<24}"
        + "".join(f"{m:>22}" for m in metrics)
        + f"{'time':>8}{'size MB':>9}{'RSS MB':>8}{'1 row ms':>10}{'1k rows ms':>11}  status"
    )
    lines = [header, "  " + "-" * (len(header) - 2)]
    for row in rows:
        cells = "".join(
            f"{row[m]:>13.4f} ± {row[m + '_std']:<6.4f}" if m in row else f"{'-':>22}"
            for m in metrics
        )
        weighed = (
            f"{row['model_mb']:>9.2f}{row['serving_rss_mb']:>8.0f}"
            f"{row['latency_row_ms']:>10.3f}{row['latency_batch_ms']:>11.2f}"
            if "model_mb" in row
            else f"{'-':>9}{'-':>8}{'-':>10}{'-':>11}"
        )
        lines.append(
            f"  {row['rank']:>4}  {row['model']:<24}{cells}{row['seconds']:>7.1f}s{weighed}"
            f"  {row['status']}"
        )
    return "\n".join(lines)
