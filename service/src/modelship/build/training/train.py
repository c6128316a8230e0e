"""Training end to end: data → model search (or one model) → ONNX export → parity → footprint
→ artifact."""

from __future__ import annotations

import hashlib
import platform
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from modelship.build import explanation as explain
from modelship.build.measure import measure_footprint
from modelship.build.report import Evaluation, add_report
from modelship.build.report.numbers import Outputs
from modelship.build.training import data as datamod
from modelship.build.training import tuning
from modelship.build.training.data import RawData
from modelship.build.training.export import NUMERIC_DTYPE, FittedModel, export_onnx, measure_parity
from modelship.build.training.models import MENU, Candidate, Sizing, build_pipeline
from modelship.build.training.options import TrainOptions
from modelship.build.training.search import (
    CV_SCORERS,
    Family,
    Say,
    Search,
    cores,
    fit_quietly,
    folds_for,
    leaderboard_rows,
    leaderboard_table,
    searched_table,
    select,
)
from modelship.contracts.card import (
    ArtifactFiles,
    Distribution,
    Feature,
    FeatureKind,
    ModelCard,
    ModelInfo,
    NumericStats,
    SearchInfo,
    Task,
    TrainingData,
)
from modelship.contracts.footprint import Footprint
from modelship.errors import TrainingError
from modelship.model import artifact
from modelship.model.codecs.base import MISSING_TOKENS
from modelship.model_quality import classification_metrics, regression_metrics
from modelship.serving.monitoring.distribution import categorical_reference, numeric_reference

EXAMPLE_ROWS = 5


def model_name(text: str) -> str:
    """A name safe in URLs (the V2 protocol puts it in paths): lowercase, digits, - _ ."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return cleaned or "model"


@dataclass(frozen=True)
class _Prepared:
    """Everything a candidate's export needs besides the fitted pipeline."""

    options: TrainOptions
    raw: RawData
    rows_used: int
    task: Task
    kinds: dict[str, FeatureKind]
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    # Each exported candidate's fitted pipeline and ONNX test-split outputs, by artifact
    # directory: the report is drawn for the winner only, once the search has chosen it.
    exported: dict[Path, tuple[Pipeline, list[npt.NDArray[Any]]]] = field(default_factory=dict)

    def export(self, candidate: Candidate, pipeline: Pipeline, directory: Path) -> ModelCard:
        """Export, check parity on the test split, and write an artifact with its card."""
        options, task, kinds = self.options, self.task, self.kinds
        onnx_bytes, input_names = export_onnx(pipeline, kinds, task)
        target_scale = float(np.std(self.y_train)) if task == "regression" else 1.0
        parity, outputs = measure_parity(
            onnx_bytes=onnx_bytes,
            pipeline=pipeline,
            frame=self.x_test,
            kinds=kinds,
            input_names=input_names,
            task=task,
            target_scale=target_scale,
            tolerance=options.parity_tolerance,
        )
        classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
        if task == "regression":
            test_metrics: dict[str, Any] = regression_metrics(self.y_test, outputs[0].reshape(-1))
        else:
            assert classes is not None
            test_metrics = classification_metrics(
                list(self.y_test), list(outputs[0].astype(str)), outputs[1], classes
            )
        estimator = pipeline.steps[-1][1]
        card = ModelCard(
            name=model_name(options.name or f"{options.data.stem}-{options.target}"),
            task=task,
            target=options.target,
            features=_features(self.x_train, kinds, input_names),
            classes=classes,
            model=ModelInfo(
                kind=candidate.key,
                estimator=type(estimator).__name__,
                params=_plain_params(estimator.get_params()),
                polynomial_degree=options.polynomial_degree if candidate.scaled else None,
            ),
            metrics={"test": test_metrics},
            parity=parity,
            training_data=TrainingData(
                source=self.raw.source,
                sha256=self.raw.sha256,
                rows=len(self.raw.frame),
                rows_used=self.rows_used,
                train_rows=len(self.x_train),
                test_rows=len(self.x_test),
            ),
            versions=_versions(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            examples=_examples(self.x_test, kinds),
            artifact=ArtifactFiles(
                onnx_file=artifact.ONNX_FILE,
                onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
                onnx_bytes=len(onnx_bytes),
            ),
            # Predictions on rows the model never trained on: what live traffic should look like.
            prediction_distribution=prediction_distribution(outputs, task),
        )
        artifact.save(directory, card, onnx_bytes)
        self.exported[directory] = (pipeline, outputs)
        return card

    def explain(self, directory: Path, say: Say) -> bool:
        """Record the explanation of the exported candidate in `directory` into its artifact.

        Only the chosen model gets one, after the search: recording it takes up to seconds per
        model, which every candidate would otherwise spend from the search's time budget.
        Whether a file was recorded (the card says why not, otherwise)."""
        loaded = artifact.load(directory)
        pipeline, _ = self.exported[directory]
        say("Recording what per-prediction explanations need")
        explanation = explain.write(
            directory,
            loaded.onnx_bytes,
            pipeline=pipeline,
            frame=self.x_train,
            task=self.task,
            classes=loaded.card.classes,
        )
        card = loaded.card.model_copy(update={"explanation": explanation})
        artifact.save(directory, card, loaded.onnx_bytes)
        return explanation.file is not None

    def report(self, card: ModelCard, onnx_bytes: bytes, directory: Path, say: Say) -> ModelCard:
        """Draw the training report of the exported candidate in `directory` into the output."""
        pipeline, outputs = self.exported[directory]
        evaluation = Evaluation(
            onnx_bytes=onnx_bytes,
            training=self.x_train,
            training_target=self.y_train,
            held_out=self.x_test,
            truth=self.y_test,
            reference=reference_outputs(pipeline, self.x_test, self.task),
            predictions=onnx_predictions(outputs, self.task),
            seed=self.options.seed,
            explanation=(
                (directory / card.explanation.file).read_bytes()
                if card.explanation is not None and card.explanation.file
                else None
            ),
        )
        return add_report(card, evaluation, self.options.output, say)


def train(options: TrainOptions, say: Say) -> ModelCard:
    started = time.perf_counter()
    prepared = _prepare(options, say)
    task = prepared.task
    candidates = _candidates(task, options.model)
    numeric = [n for n, k in prepared.kinds.items() if k == "numeric"]
    categorical = [n for n, k in prepared.kinds.items() if k == "categorical"]
    if options.polynomial_degree and not any(c.scaled for c in candidates):
        say("Note: --poly applies to linear models, LDA and MLP; tree models do not use it")
    searching = len(candidates) > 1
    sizing = Sizing(
        rows=len(prepared.x_train),
        classes=int(prepared.y_train.nunique()) if task == "classification" else 0,
        seed=options.seed,
        # The search runs one single-threaded task per core; a lone fit may use every core.
        threads=1 if searching else cores(),
        max_model_bytes=int(options.max_model_mb * 2**20),
    )

    def pipeline_of(candidate: Candidate) -> Pipeline:
        return build_pipeline(candidate, numeric, categorical, options.polynomial_degree, sizing)

    with tempfile.TemporaryDirectory(prefix="modelship-train-") as scratch_dir:
        scratch = Path(scratch_dir)
        if searching:
            chosen_dir, footprint, leaderboard, search_info = _search(
                prepared, candidates, pipeline_of, sizing, scratch, say
            )
            # The serving worker loads the explanation too: weigh the winner again with it.
            if prepared.explain(chosen_dir, say):
                footprint = _weigh(
                    chosen_dir,
                    options,
                    f"{chosen_dir.name}, the chosen model, with its explanation,",
                    "raise the limit or choose another --model",
                    say,
                )
        else:
            chosen = candidates[0]
            say(f"Fitting {chosen.key} ({chosen.description}) on the training split")
            pipeline = fit_quietly(pipeline_of(chosen), prepared.x_train, prepared.y_train)
            say("Exporting to ONNX and checking parity with scikit-learn on the test split")
            chosen_dir = scratch / chosen.key
            prepared.export(chosen, pipeline, chosen_dir)
            # Before the footprint, as import does: the serving worker loads the explanation.
            prepared.explain(chosen_dir, say)
            footprint = _weigh(
                chosen_dir, options, chosen.key, "raise the limit or choose a smaller --model", say
            )
            leaderboard, search_info = None, None
        loaded = artifact.load(chosen_dir)
        card = loaded.card.model_copy(
            update={"leaderboard": leaderboard, "footprint": footprint, "search": search_info}
        )
        say(f"Footprint: {footprint.summary()}")
        card = prepared.report(card, loaded.onnx_bytes, chosen_dir, say)
        artifact.save(options.output, card, loaded.onnx_bytes, loaded.explanation)
    say(f"Wrote {options.output} in {time.perf_counter() - started:.1f} s")
    return card


def _weigh(directory: Path, options: TrainOptions, what: str, advice: str, say: Say) -> Footprint:
    """The footprint of the artifact in `directory`, which must fit the footprint budget."""
    say("Measuring the model's footprint in a fresh serving process")
    footprint = measure_footprint(directory)
    excess = options.limits.excess(footprint)
    if excess:
        raise TrainingError(f"{what} does not fit the footprint budget: {excess}; {advice}")
    return footprint


def _search(  # noqa: PLR0917 - private, called once
    prepared: _Prepared,
    candidates: list[Candidate],
    pipeline_of: Any,
    sizing: Sizing,
    scratch: Path,
    say: Say,
) -> tuple[Path, Footprint, list[dict[str, Any]], SearchInfo]:
    options, task = prepared.options, prepared.task
    folds = folds_for(len(prepared.x_train), options.cv_folds)
    if task == "classification":
        folds = min(folds, int(prepared.y_train.value_counts().min()))
    if folds < 2:
        raise TrainingError(
            "a class has a single row in the training split: cross-validation needs at least 2 "
            "rows of every class there (give it more rows, or --model NAME to fit one model)"
        )
    by_key = {c.key: c for c in candidates}
    search = Search(
        task=task,
        x=prepared.x_train,
        y=prepared.y_train,
        folds=folds,
        seed=options.seed,
        limits=options.limits,
        export=lambda key, pipeline, directory: prepared.export(by_key[key], pipeline, directory),
        say=say,
        scratch=scratch,
        configure=lambda key, pipeline, config: tuning.configured(pipeline, key, config, sizing),
        # On 10,000+ rows one held-out fold (a third of them) judges as well as three, in a
        # third of the time, which the search spends on more configurations instead.
        holdout=options.cv_folds is None and sizing.large,
    )
    results = search.run(
        [Family(c.key, pipeline_of(c), tuning.space(c.key, sizing)) for c in candidates]
    )
    choice = select(results, task, folds, options.limits)
    leaderboard = leaderboard_rows(results, task)
    say("What was searched (screen: the defaults on a sample; tried: configurations at full size):")
    say(searched_table(search.summary(), CV_SCORERS[task][0][0]))
    say(leaderboard_table(leaderboard, [t for t, _, _ in CV_SCORERS[task]]))
    for excluded in choice.excluded:
        say(f"Excluded for size: {excluded}")
    say(f"Chosen: {choice.reason}")
    winner = choice.winner
    assert winner.artifact is not None and winner.footprint is not None
    info = SearchInfo(
        time_budget_seconds=options.time_budget_seconds,
        seconds=round(search.seconds, 1),
        folds=folds,
        parallel_tasks=search.workers,
        max_model_mb=options.max_model_mb,
        max_serving_mb=options.max_serving_mb,
        selection=choice.reason,
        holdout=search.holdout,
        families=search.summary(),
        skipped=search.skipped,
        excluded=choice.excluded,
    )
    return winner.artifact, winner.footprint, leaderboard, info


def _prepare(options: TrainOptions, say: Say) -> _Prepared:
    raw = datamod.read_csv(options.data)
    frame = raw.frame
    if options.target not in frame.columns:
        raise TrainingError(
            f"target column {options.target!r} is not in {options.data.name}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    say(f"Read {len(frame)} rows x {len(frame.columns)} columns from {options.data}")

    task = _decide_task(frame[options.target], options.task, say)
    y_all, keep = _target(frame[options.target], task)
    if (~keep).sum():
        say(f"Dropped {int((~keep).sum())} rows with no target value")
    frame = frame[keep].reset_index(drop=True)
    y_all = y_all[keep].reset_index(drop=True)

    names = datamod.select_features(
        [str(c) for c in frame.columns], options.target, options.features, options.drop
    )
    kinds = datamod.infer_kinds(frame, names, options.numeric, options.categorical)
    say(
        "Features: "
        + ", ".join(f"{n} ({'num' if k == 'numeric' else 'cat'})" for n, k in kinds.items())
    )
    x_all = datamod.model_frame(frame, kinds)

    x_train, x_test, y_train, y_test = _split(x_all, y_all, task, options)
    say(f"Split: {len(x_train)} training rows, {len(x_test)} held-out test rows")
    return _Prepared(
        options=options,
        raw=raw,
        rows_used=len(frame),
        task=task,
        kinds=kinds,
        x_train=x_train,
        x_test=x_test,
        y_train=y_train,
        y_test=y_test,
    )


def _decide_task(target: pd.Series, requested: str, say: Say) -> Task:
    inferred, reason = datamod.infer_task(target)
    if requested == "auto":
        say(f"Task: {inferred} (inferred: {reason}; set --task to override)")
        return inferred
    if requested == "regression" and not datamod.is_numeric(target):
        raise TrainingError(
            "--task regression needs a numeric target, but the target holds text labels"
        )
    say(f"Task: {requested}")
    return "regression" if requested == "regression" else "classification"


def _target(column: pd.Series, task: Task) -> tuple[pd.Series, pd.Series]:
    if task == "regression":
        values = datamod.parse_numeric(column)
        keep = values.notna()
        values = values.where(keep, 0.0)
    else:
        stripped = column.str.strip()
        keep = ~stripped.isin(MISSING_TOKENS)
        values = column.astype(str)
    kept = values[keep]
    if kept.nunique() < 2:
        only = kept.iloc[0] if len(kept) else "nothing"
        raise TrainingError(
            f"the target has a single value ({only!r}) in every row: there is nothing to learn"
        )
    return values, keep


def _split(
    x: pd.DataFrame, y: pd.Series, task: Task, options: TrainOptions
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    stratify = None
    if task == "classification":
        counts = y.value_counts()
        rare = counts[counts < 2]
        if len(rare):
            raise TrainingError(
                f"class(es) {', '.join(map(repr, rare.index))} have a single row; every class "
                "needs at least 2 rows to appear in both the training and the test split"
            )
        stratify = y
    if len(x) < 20:
        raise TrainingError(f"only {len(x)} usable rows: modelship needs at least 20 to train")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=options.test_size, random_state=options.seed, stratify=stratify
    )
    return x_train, x_test, y_train, y_test


def _candidates(task: Task, model: str) -> list[Candidate]:
    """The menu of the task, or the one model asked for (TrainOptions knows it is on a menu)."""
    menu = MENU[task]
    if model == "auto":
        return list(menu.values())
    if model not in menu:
        raise TrainingError(
            f"--model {model!r} is not a {task} model; for {task} choose one of: auto, "
            f"{', '.join(menu)}"
        )
    return [menu[model]]


def _features(
    x: pd.DataFrame, kinds: dict[str, FeatureKind], input_names: dict[str, str]
) -> list[Feature]:
    features = []
    for name, kind in kinds.items():
        column = x[name]
        if kind == "numeric":
            present = column.dropna()
            stats = NumericStats(
                min=float(present.min()),
                max=float(present.max()),
                mean=float(present.mean()),
                median=float(present.median()),
                missing=int(column.isna().sum()),
            )
            features.append(
                Feature(
                    name=name,
                    kind=kind,
                    input_name=input_names[name],
                    numeric=stats,
                    distribution=numeric_reference(column.to_numpy(dtype=np.float64)),
                    dtype=NUMERIC_DTYPE,
                )
            )
        else:
            categories = sorted({str(v) for v in column})
            features.append(
                Feature(
                    name=name,
                    kind=kind,
                    input_name=input_names[name],
                    categories=categories,
                    distribution=categorical_reference(column),
                    dtype="string",
                )
            )
    return features


def _examples(x_test: pd.DataFrame, kinds: dict[str, FeatureKind]) -> list[dict[str, Any]]:
    rows = []
    for _, record in x_test.head(EXAMPLE_ROWS).iterrows():
        row: dict[str, Any] = {}
        for name, kind in kinds.items():
            value = record[name]
            if kind == "numeric":
                row[name] = None if pd.isna(value) else float(value)
            else:
                row[name] = str(value)
        rows.append(row)
    return rows


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        for key, value in sorted(params.items())
    }


def _versions() -> dict[str, str]:
    packages = ["modelship", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas"]
    found = {name: version(name) for name in packages}
    found["python"] = platform.python_version()
    return found


def reference_outputs(model: FittedModel, frame: pd.DataFrame, task: Task) -> npt.NDArray[Any]:
    """What the original model predicts on `frame` (probabilities for classification), for the
    report's parity plot."""
    if task == "regression":
        return np.asarray(model.predict(frame), dtype=np.float64)
    return np.asarray(model.predict_proba(frame), dtype=np.float64)


def prediction_distribution(outputs: list[npt.NDArray[Any]], task: Task) -> Distribution:
    """The distribution of the model's predictions (classes for classification), which the
    drift monitor compares live predictions with."""
    if task == "regression":
        return numeric_reference(outputs[0].reshape(-1))
    return categorical_reference(outputs[0].astype(str))


def onnx_predictions(outputs: list[npt.NDArray[Any]], task: Task) -> Outputs:
    if task == "regression":
        return outputs[0].reshape(-1), None
    return outputs[0].reshape(-1).astype(str), outputs[1]
