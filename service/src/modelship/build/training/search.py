"""The model search: screen every family, tune the leaders, fit and weigh the best, in a budget.

Within the time budget (and past it until one candidate has been exported, so that the search
always ends with a model):
  1. screen: every family's defaults on two small samples of the first fold, boosters at few
     rounds, estimate its score and its cost at full size, and rank the families;
  2. tune: configurations at full size (tuning.SPACES), breadth first from the leaders, boosters
     with early stopping, each started only when its estimated cost ends in time;
  3. fit: the best configuration of each tried family on the whole training split, exported to
     ONNX, checked for parity, and its footprint (size, latency, serving memory) measured in a
     fresh serving process in the background while the next pair fits.
Tasks run in parallel, one per core, in threads (the estimators' heavy parts are native code
that releases the GIL; worker processes would each import scikit-learn first, which costs more
than small folds), every native thread pool held to one thread (no nested pools fighting for
cores). Then the winner is chosen among the candidates that fit the footprint budget (`select`).
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

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from modelship.build.measure import measure_footprint
from modelship.build.training import tuning
from modelship.build.training.tuning import Config, fit_stopping, fixed, label
from modelship.contracts.card import Task
from modelship.contracts.footprint import Footprint
from modelship.errors import ModelshipError, TrainingError

Say = Callable[[str], None]

# Training rows of the screen: each family's defaults fitted on this many rows of the first fold
# estimate its score and its cost at full size, for a few seconds in all.
SCREEN_ROWS = 2_000
# What a doubling of the rows gained in the screen is expected to gain again, per doubling up
# to the full size (learning curves flatten).
CURVE = 0.5
# The screen stops starting families once it has spent this share of the time budget.
SCREEN_SHARE = 0.3
# Screened, tried and fitted whatever the time, so that a budget spent at once still ends with a
# choice of models, not only the menu's first (LDA's 0.959 on the 26-class table, where logistic
# regression, second, reaches 0.972).
MIN_SCREENED = 2
# Families tuned first, by their screen score; the others are tried after them if time is left.
LEADERS = 3
# Kept back for exporting the final fits and measuring their footprints in a serving process.
FINISH_SECONDS = 4.0

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
    configs: int = 1  # configurations tried
    config: str = "defaults"  # the best of them, with the rounds early stopping kept
    tried: list[dict[str, Any]] = field(default_factory=list)  # each configuration's scores

    def score(self, title: str) -> float:
        return self.scores[title]

    def row(self, metrics: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"model": self.key}
        for title in metrics:
            if title in self.scores:
                row[title] = self.scores[title]
                row[f"{title}_std"] = self.scores[f"{title}_std"]
        row["seconds"] = round(self.seconds, 2)
        row["configs"] = self.configs
        row["config"] = self.config
        row["tried"] = self.tried
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


@dataclass(frozen=True)
class Trial:
    """One configuration of a family, scored on the evaluation folds."""

    config: Config
    scores: dict[str, float]  # mean and `_std` of every scorer over the folds
    rounds: int | None  # what early stopping kept, for a boosting family
    seconds: float  # the longest of its tasks: what one more fold of it costs

    @property
    def score(self) -> float:
        """The main scorer's mean (CV_SCORERS lists it first)."""
        return next(iter(self.scores.values()))

    def described(self) -> str:
        rounds = f", {self.rounds} rounds" if self.rounds is not None else ""
        return label(self.config) + rounds


@dataclass
class Family:
    """A model family's way through the search: screened, tuned, then fitted if it leads."""

    key: str
    pipeline: Pipeline  # the menu's defaults
    configs: list[Config]
    screen_score: float | None = None
    screen_seconds: float = 0.0
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0  # everything spent on it: screen, trials, final fit, export
    estimate: float = 0.0  # what one evaluation fold of its next configuration should take
    untried: str = ""  # why configurations were left untried

    @property
    def best(self) -> Trial | None:
        return max(self.trials, key=lambda t: t.score, default=None)

    def next_config(self) -> Config | None:
        return self.configs[len(self.trials)] if len(self.trials) < len(self.configs) else None


def _scored(
    fitted: Pipeline, x: pd.DataFrame, y: pd.Series, scorers: list[tuple[str, str, float]]
) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            title: sign * float(get_scorer(name)(fitted, x, y)) for title, name, sign in scorers
        }


def _task(  # noqa: PLR0917 - private, one parallel task
    pipeline: Pipeline,
    key: str,
    x: pd.DataFrame,
    y: pd.Series,
    fold: tuple[Any, Any] | None,
    scorers: list[tuple[str, str, float]],
    seed: int,
    stop: bool = True,
) -> tuple[Pipeline, dict[str, float], int | None, float]:
    """One parallel task: a fold (fit on its training part with early stopping for a booster,
    score the rest) or the final fit on everything. Its output, scores, rounds and seconds."""
    started = time.perf_counter()
    # OpenMP's thread count is a per-thread setting: the search's process-wide limit does not
    # reach this worker thread, where histogram boosting would start a team of one thread per
    # core in each task (on a busy 2-core machine that made it ten times slower).
    with threadpool_limits(limits=1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fold is None:
            pipeline.fit(x, y)
            return pipeline, {}, None, time.perf_counter() - started
        train_rows, test_rows = fold
        fitted, rounds = fit_stopping(
            pipeline, key, x.iloc[train_rows], y.iloc[train_rows], seed, stop=stop
        )
        scores = _scored(fitted, x.iloc[test_rows], y.iloc[test_rows], scorers)
    return fitted, scores, rounds, time.perf_counter() - started


def _sample(fold: tuple[Any, Any], y: pd.Series, rows: int, seed: int) -> tuple[Any, Any]:
    """The fold with its training part cut to `rows` rows (stratified for classes)."""
    train_rows, test_rows = fold
    if len(train_rows) <= rows:
        return fold
    stratify = None if pd.api.types.is_numeric_dtype(y) else y.iloc[train_rows]
    try:
        kept, _ = train_test_split(
            train_rows, train_size=rows, random_state=seed, stratify=stratify
        )
    except ValueError:  # a class too rare for a stratified sample
        kept, _ = train_test_split(train_rows, train_size=rows, random_state=seed)
    return np.sort(kept), test_rows


@dataclass
class Search:
    """Screens, tunes and fits the families within `limits`; `export` turns a final fit into an
    artifact."""

    task: Task
    x: pd.DataFrame
    y: pd.Series
    folds: int
    seed: int
    limits: Limits
    export: Callable[[str, Pipeline, Path], object]
    say: Say
    scratch: Path
    # Configure a family's pipeline for one configuration (tuning.configured with the sizing).
    configure: Callable[[str, Pipeline, Config], Pipeline]
    # Judge on one held-out fold instead of every fold (large data: a third of it is plenty).
    holdout: bool = False
    workers: int = field(default_factory=cores)
    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    families: list[Family] = field(default_factory=list)

    def run(self, families: list[Family]) -> list[Result]:
        self.families = families
        started = time.perf_counter()
        deadline = started + self.limits.time_budget_seconds
        scorers = CV_SCORERS[self.task]
        folds = list(splitter(self.task, self.folds, self.seed).split(self.x, self.y))
        judged = folds[:1] if self.holdout else folds
        # A final fit trains on every row: longer than a fold's fit by about this much.
        self._full_size = len(self.x) / len(folds[0][0])
        with (
            # Process-wide, set once: per-task limits would restore each other's settings.
            threadpool_limits(limits=1),
            ThreadPoolExecutor(max_workers=1) as measuring,
            Parallel(n_jobs=self.workers, backend="threading") as parallel,
        ):
            self._screen(families, folds[0], scorers, parallel, deadline)
            self._tune(families, judged, scorers, parallel, deadline)
            self._fit(families, scorers, parallel, deadline, measuring)
            for result in self.results:
                self._collect(result)
        self.skipped = [f.key for f in families if not f.trials]
        if self.skipped:
            self.say(
                f"Time budget of {self.limits.time_budget_seconds:g} s spent: not tried at full "
                f"size {', '.join(self.skipped)} (raise --time-budget to try them)"
            )
        self.seconds = time.perf_counter() - started
        return self.results

    def _screen(
        self,
        families: list[Family],
        fold: tuple[Any, Any],
        scorers: list[tuple[str, str, float]],
        parallel: Parallel,
        deadline: float,
    ) -> None:
        """Every family's defaults, boosters held to a few rounds, on two samples of the first
        fold (the second twice the first): a cheap first estimate of its score at full size,
        from the score on the larger sample and what doubling the rows gained, and of its cost.
        Families are tuned in the order of that estimate."""
        big = _sample(fold, self.y, SCREEN_ROWS, self.seed)
        samples = [big]
        if len(big[0]) < len(fold[0]):
            samples.insert(0, _sample(fold, self.y, SCREEN_ROWS // 2, self.seed))
        doublings = math.log2(len(fold[0]) / len(big[0]))
        self.say(
            f"Screening {len(families)} model families on "
            f"{' and '.join(f'{len(s[0]):,}' for s in samples)} training rows, "
            f"{self.workers} task(s) at a time, within {self.limits.time_budget_seconds:g} s:"
        )
        main = scorers[:1]
        title = main[0][0]
        stop = time.perf_counter() + SCREEN_SHARE * self.limits.time_budget_seconds
        for number, family in enumerate(families):
            if number >= MIN_SCREENED and time.perf_counter() >= min(stop, deadline):
                family.untried = "not screened: the screen's share of the time budget was spent"
                continue
            pipeline = tuning.screened(
                self.configure(family.key, family.pipeline, family.configs[0]), family.key
            )
            outputs = parallel(
                delayed(_task)(
                    clone(pipeline), family.key, self.x, self.y, s, main, self.seed, stop=False
                )
                for s in samples
            )
            scores = [o[1][title] for o in outputs]
            times = [o[3] for o in outputs]
            gain = max(0.0, scores[-1] - scores[0]) if len(scores) > 1 else 0.0
            family.screen_score = scores[-1] + CURVE * gain * doublings
            family.seconds = sum(times)
            # A fit's time is a fixed part (a booster's trees, however few the rows) and a part
            # per row: the two samples tell them apart (a cost per row alone overestimated a
            # 26-class LightGBM's full-size fold five times).
            per_row = (
                max(0.0, times[-1] - times[0]) / (len(big[0]) - len(samples[0][0]))
                if len(samples) > 1
                else times[-1] / len(big[0])
            )
            family.estimate = (
                times[-1] + per_row * (len(fold[0]) - len(big[0]))
            ) * tuning.rounds_factor(family.key, family.pipeline)
            self.say(
                f"  {family.key:<24} {title} "
                + " → ".join(f"{v:.4f}" for v in scores)
                + f", about {family.screen_score:.4f} at full size  ({family.seconds:.1f} s; "
                f"about {family.estimate:.1f} s a fold at full size)"
            )
        families.sort(key=lambda f: -f.screen_score if f.screen_score is not None else math.inf)

    def _tune(
        self,
        families: list[Family],
        judged: list[tuple[Any, Any]],
        scorers: list[tuple[str, str, float]],
        parallel: Parallel,
        deadline: float,
    ) -> None:
        """Configurations on the judging folds, at full size: the leaders' defaults, then the
        leaders' alternatives (the best family first), then the other families, while their
        estimated cost ends before the time kept back for the final fits."""
        main = scorers[0][0]
        leaders = [f for f in families if f.screen_score is not None][:LEADERS]
        how = "one held-out fold" if len(judged) == 1 else f"{len(judged)}-fold cross-validation"
        self.say(f"Tuning, judged by {how} (leaders: {', '.join(f.key for f in leaders)}):")
        number = 0
        while True:
            batch = self._next_batch(families, leaders, len(judged), deadline)
            if not batch:
                return
            tasks = [(f, c, fold) for f, c in batch for fold in judged]
            outputs = parallel(
                delayed(_task)(
                    self.configure(f.key, f.pipeline, c),
                    f.key,
                    self.x,
                    self.y,
                    fold,
                    scorers,
                    self.seed,
                )
                for f, c, fold in tasks
            )
            for family, config in batch:
                mine = [o for (f, _, _), o in zip(tasks, outputs, strict=True) if f is family]
                trial = _trial(config, mine, scorers)
                family.trials.append(trial)
                family.estimate = trial.seconds
                family.seconds += sum(o[3] for o in mine)
                number += 1
                self.say(
                    f"  [{number}] {family.key:<24} {main} {trial.scores[main]:.4f} ± "
                    f"{trial.scores[main + '_std']:.4f}  {trial.described()}  "
                    f"({trial.seconds:.1f} s)"
                )

    def _next_batch(
        self, families: list[Family], leaders: list[Family], folds: int, deadline: float
    ) -> list[tuple[Family, Config]]:
        """The next configurations to try, one per family, until every core has a task."""

        def rank(family: Family) -> tuple[int, float]:
            # Breadth first: the leaders' defaults, then their second configurations beside
            # the other families' defaults, and so on; within a round the best family so far
            # (by its screen until it has a full-size score) first.
            best = family.best
            score = best.score if best else (family.screen_score or -math.inf)
            return (len(family.trials) + (family not in leaders), -score)

        open_ = sorted(
            (f for f in families if f.next_config() is not None and not f.untried),
            key=rank,
        )
        reserve = self._final_fit_estimate(families)
        batch: list[tuple[Family, Config]] = []
        tasks = 0.0
        for family in open_:
            # The first batch runs whatever the time (the search must end with a model): the
            # best two screened families side by side, so that the final fits, two at a time,
            # still have a choice.
            forced = not any(f.trials for f in families) and len(batch) < MIN_SCREENED
            if tasks >= self.workers and not forced:
                break
            needed = family.estimate * math.ceil(folds / self.workers)
            if not forced and time.perf_counter() + needed > deadline - reserve:
                family.untried = (
                    f"{len(family.configs) - len(family.trials)} configuration(s) not "
                    f"started: about {needed:.0f} s each, past the time budget"
                )
                continue
            batch.append((family, family.next_config() or {}))
            tasks += folds
        return batch

    def _final_fit_estimate(self, families: list[Family]) -> float:
        """What the final fits of the best `workers` families should take (run together)."""
        tried = sorted(
            (f for f in families if f.best is not None),
            key=lambda f: -f.best.score if f.best else 0.0,
        )
        fits = max((f.estimate * self._full_size for f in tried[: self.workers]), default=0.0)
        return fits + FINISH_SECONDS

    def _fit(
        self,
        families: list[Family],
        scorers: list[tuple[str, str, float]],
        parallel: Parallel,
        deadline: float,
        measuring: ThreadPoolExecutor,
    ) -> None:
        """The best configuration of each tried family, fitted on the whole training split,
        exported and weighed, best first: two at a time, the first pair whatever the time."""
        main = scorers[0][0]
        tried = sorted(
            (f for f in families if f.best is not None),
            key=lambda f: -f.best.scores[main] if f.best else 0.0,
        )
        self.say(f"Fitting on the whole training split, {self.workers} at a time, best first:")
        for first in range(0, len(tried), self.workers):
            batch = tried[first : first + self.workers]
            needed = max(f.estimate * self._full_size for f in batch) + FINISH_SECONDS
            if self._has_model() and time.perf_counter() + needed > deadline:
                for family in batch:
                    self.results.append(
                        self._result(
                            family,
                            f"not fitted: needs about {needed:.0f} s, past the time budget",
                        )
                    )
                continue
            pipelines = [
                fixed(self.configure(f.key, f.pipeline, f.best.config), f.key, f.best.rounds)
                for f in batch
                if f.best is not None
            ]
            outputs = parallel(
                delayed(_task)(p, f.key, self.x, self.y, None, scorers, self.seed)
                for p, f in zip(pipelines, batch, strict=True)
            )
            for family, (fitted, _, _, seconds) in zip(batch, outputs, strict=True):
                exporting = time.perf_counter()
                family.seconds += seconds
                result = self._result(family, "fits")
                try:
                    self.export(family.key, fitted, self.scratch / family.key)
                    result.artifact = self.scratch / family.key
                    result.pending = measuring.submit(measure_footprint, result.artifact)
                except ModelshipError as exc:
                    result.status = f"not exportable: {exc.message}"
                family.seconds += time.perf_counter() - exporting
                result.seconds = family.seconds
                self.results.append(result)
                self._report(len(self.results), len(tried), result, main)

    def summary(self) -> list[dict[str, Any]]:
        """What was searched per family, in the order of the screen: its screen score, the
        configurations tried at full size and the best one, the seconds it took in all."""
        rows = []
        for family in self.families:
            best = family.best
            rows.append(
                {
                    "model": family.key,
                    "screen_score": None
                    if family.screen_score is None
                    else round(family.screen_score, 4),
                    "configs": len(family.trials),
                    "of_configs": len(family.configs),
                    "best_config": best.described() if best else None,
                    "best_score": round(best.score, 4) if best else None,
                    "seconds": round(family.seconds, 2),
                    "untried": family.untried
                    or ("" if family.trials else "not tried at full size: time budget spent"),
                }
            )
        return rows

    def _result(self, family: Family, status: str) -> Result:
        best = family.best
        assert best is not None
        return Result(
            family.key,
            scores=dict(best.scores),
            seconds=family.seconds,
            status=status,
            configs=len(family.trials),
            config=best.described(),
            tried=[
                {
                    "config": t.described(),
                    **{k: round(v, 4) for k, v in t.scores.items()},
                    "seconds": round(t.seconds, 2),
                }
                for t in family.trials
            ],
        )

    def _has_model(self) -> bool:
        """Whether a candidate so far was exported: until one is, the budget does not stop the
        search (a first candidate that cannot be exported must not leave the user with nothing)."""
        return any(result.artifact is not None for result in self.results)

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


def _trial(
    config: Config,
    outputs: list[tuple[Pipeline, dict[str, float], int | None, float]],
    scorers: list[tuple[str, str, float]],
) -> Trial:
    scores: dict[str, float] = {}
    for title, _, _ in scorers:
        values = [s[title] for _, s, _, _ in outputs]
        mean = sum(values) / len(values)
        scores[title] = mean
        scores[f"{title}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    rounds = [r for _, _, r, _ in outputs if r is not None]
    return Trial(
        config=config,
        scores=scores,
        rounds=int(np.median(rounds)) if rounds else None,
        seconds=max(o[3] for o in outputs),
    )


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


def searched_table(rows: list[dict[str, Any]], metric: str) -> str:
    """What was searched per family (Search.summary) as the command prints it."""
    header = f"  {'model':<24}{'screen':>8}{'tried':>7}{metric:>10}{'time':>8}  best configuration"
    lines = [header, "  " + "-" * (len(header) - 2)]
    for row in rows:
        screen = f"{row['screen_score']:>8.4f}" if row["screen_score"] is not None else f"{'-':>8}"
        best = f"{row['best_score']:>10.4f}" if row["best_score"] is not None else f"{'-':>10}"
        tried = f"{row['configs']}/{row['of_configs']}"
        what = row["best_config"] or ""
        if row["untried"]:
            what = f"{what}; {row['untried']}" if what else row["untried"]
        lines.append(f"  {row['model']:<24}{screen}{tried:>7}{best}{row['seconds']:>7.1f}s  {what}")
    return "\n".join(lines)


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
