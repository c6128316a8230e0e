"""Training end to end: data → (model comparison) → fit → ONNX export → parity → artifact."""

from __future__ import annotations

import hashlib
import platform
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate, train_test_split

from modelship import artifact
from modelship.card import (
    ArtifactFiles,
    Feature,
    FeatureKind,
    ModelCard,
    ModelInfo,
    NumericStats,
    Task,
    TrainingData,
)
from modelship.codecs.base import MISSING_TOKENS
from modelship.errors import TrainingError
from modelship.model_quality import classification_metrics, regression_metrics
from modelship.training import data as datamod
from modelship.training.export import export_onnx, measure_parity
from modelship.training.models import MENU, Candidate, build_pipeline

Say = Callable[[str], None]
EXAMPLE_ROWS = 5

# Cross-validation scorers per task: (column title, scikit-learn scorer, sign to report it with).
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


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    target: str
    output: Path
    task: Literal["regression", "classification", "auto"] = "auto"
    model: str = "auto"
    features: list[str] | None = None
    drop: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    polynomial_degree: int | None = None
    test_size: float = 0.2
    cv_folds: int = 5
    seed: int = 42
    parity_tolerance: float = 1e-4
    name: str | None = None


def model_name(text: str) -> str:
    """A name safe in URLs (the V2 protocol puts it in paths): lowercase, digits, - _ ."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return cleaned or "model"


def train(options: TrainOptions, say: Say) -> ModelCard:
    started = time.perf_counter()
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

    candidates = _candidates(task, options.model)
    numeric = [n for n, k in kinds.items() if k == "numeric"]
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    if options.polynomial_degree and not any(c.scaled for c in candidates):
        say("Note: --poly applies to linear models, LDA and MLP; tree models do not use it")
    leaderboard = None
    if len(candidates) > 1:
        leaderboard = _compare(
            candidates=candidates,
            x=x_train,
            y=y_train,
            task=task,
            numeric=numeric,
            categorical=categorical,
            options=options,
            say=say,
        )
        chosen = MENU[task][leaderboard[0]["model"]]
    else:
        chosen = candidates[0]

    say(f"Fitting {chosen.key} ({chosen.description}) on the training split")
    pipeline = build_pipeline(chosen, numeric, categorical, options.polynomial_degree, options.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(x_train, y_train)

    say("Exporting to ONNX and checking parity with scikit-learn on the test split")
    onnx_bytes, input_names = export_onnx(pipeline, kinds, task)
    target_scale = float(np.std(y_train)) if task == "regression" else 1.0
    parity, outputs = measure_parity(
        onnx_bytes=onnx_bytes,
        pipeline=pipeline,
        frame=x_test,
        kinds=kinds,
        input_names=input_names,
        task=task,
        target_scale=target_scale,
        tolerance=options.parity_tolerance,
    )
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    if task == "regression":
        test_metrics: dict[str, Any] = regression_metrics(y_test, outputs[0].reshape(-1))
    else:
        assert classes is not None
        test_metrics = classification_metrics(
            list(y_test), list(outputs[0].astype(str)), outputs[1], classes
        )

    card = ModelCard(
        name=model_name(options.name or f"{options.data.stem}-{options.target}"),
        task=task,
        target=options.target,
        features=_features(x_train, kinds, input_names),
        classes=classes,
        model=ModelInfo(
            kind=chosen.key,
            estimator=type(pipeline.steps[-1][1]).__name__,
            params=_plain_params(pipeline.steps[-1][1].get_params()),
            polynomial_degree=options.polynomial_degree if chosen.scaled else None,
        ),
        metrics={"test": test_metrics},
        leaderboard=leaderboard,
        parity=parity,
        training_data=TrainingData(
            source=raw.source,
            sha256=raw.sha256,
            rows=len(raw.frame),
            rows_used=len(frame),
            train_rows=len(x_train),
            test_rows=len(x_test),
        ),
        versions=_versions(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        examples=_examples(x_test, kinds),
        artifact=ArtifactFiles(
            onnx_file=artifact.ONNX_FILE,
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            onnx_bytes=len(onnx_bytes),
        ),
    )
    artifact.save(options.output, card, onnx_bytes)
    say(f"Wrote {options.output} in {time.perf_counter() - started:.1f} s")
    return card


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
    if not 0.05 <= options.test_size <= 0.5:
        raise TrainingError(f"--test-size must be between 0.05 and 0.5, got {options.test_size}")
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
    menu = MENU[task]
    if model == "auto":
        return list(menu.values())
    if model not in menu:
        raise TrainingError(
            f"unknown --model {model!r} for {task}; choose one of: auto, {', '.join(menu)}"
        )
    return [menu[model]]


def _compare(
    *,
    candidates: list[Candidate],
    x: pd.DataFrame,
    y: pd.Series,
    task: Task,
    numeric: list[str],
    categorical: list[str],
    options: TrainOptions,
    say: Say,
) -> list[dict[str, Any]]:
    folds = options.cv_folds
    if task == "classification":
        folds = min(folds, int(y.value_counts().min()))
    if folds < 2:
        raise TrainingError(f"--cv must be at least 2, got {options.cv_folds}")
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=options.seed)
        if task == "classification"
        else KFold(folds, shuffle=True, random_state=options.seed)
    )
    scorers = CV_SCORERS[task]
    say(f"Comparing {len(candidates)} models with {folds}-fold cross-validation:")
    rows: list[dict[str, Any]] = []
    for number, candidate in enumerate(candidates, 1):
        started = time.perf_counter()
        pipeline = build_pipeline(
            candidate, numeric, categorical, options.polynomial_degree, options.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = cross_validate(
                pipeline, x, y, cv=splitter, scoring={t: s for t, s, _ in scorers}, n_jobs=1
            )
        row: dict[str, Any] = {"model": candidate.key}
        for title, _, sign in scorers:
            values = sign * scores[f"test_{title}"]
            row[title] = float(np.mean(values))
            row[f"{title}_std"] = float(np.std(values))
        row["seconds"] = round(time.perf_counter() - started, 2)
        rows.append(row)
        main = scorers[0][0]
        say(
            f"  [{number}/{len(candidates)}] {candidate.key:<24} {main} {row[main]:.4f} "
            f"± {row[main + '_std']:.4f}  ({row['seconds']:.1f} s)"
        )
    primary = scorers[0][0]
    rows.sort(key=lambda r: -r[primary])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    say(leaderboard_table(rows, [t for t, _, _ in scorers]))
    say(f"Best: {rows[0]['model']}")
    return rows


def leaderboard_table(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    header = f"  {'rank':>4}  {'model':<24}" + "".join(f"{m:>22}" for m in metrics) + f"{'time':>9}"
    lines = [header, "  " + "-" * (len(header) - 2)]
    for row in rows:
        cells = "".join(f"{row[m]:>13.4f} ± {row[m + '_std']:<6.4f}" for m in metrics)
        lines.append(f"  {row['rank']:>4}  {row['model']:<24}{cells}{row['seconds']:>8.1f}s")
    return "\n".join(lines)


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
                Feature(name=name, kind=kind, input_name=input_names[name], numeric=stats)
            )
        else:
            categories = sorted({str(v) for v in column})
            features.append(
                Feature(name=name, kind=kind, input_name=input_names[name], categories=categories)
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
