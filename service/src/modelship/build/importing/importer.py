"""`modelship import` end to end: model file + sample → served ONNX → parity → artifact."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from modelship.build import explanation as explain
from modelship.build.importing.formats import CONVERTERS, Request
from modelship.build.importing.graph import text_labels
from modelship.build.importing.sources import PICKLE_FORMATS, read_source
from modelship.build.measure import measure_footprint
from modelship.build.report import Evaluation, add_report
from modelship.build.training import data as datamod
from modelship.build.training.export import FittedModel, ParityWording, measure_parity, onnx_feeds
from modelship.build.training.search import Say
from modelship.build.training.train import (
    _examples,
    _features,
    _plain_params,
    _versions,
    model_name,
    onnx_predictions,
    prediction_distribution,
    reference_outputs,
)
from modelship.contracts.card import (
    ArtifactFiles,
    ModelCard,
    ModelInfo,
    Provenance,
    Task,
    TrainingData,
)
from modelship.errors import ModelImportError
from modelship.model import artifact
from modelship.model.codecs.base import MISSING_TOKENS
from modelship.model_quality import classification_metrics, regression_metrics

# The name a prediction column gets when the user does not name the target.
DEFAULT_TARGET = "target"


@dataclass(frozen=True)
class ImportOptions:
    model: Path
    sample: Path
    output: Path
    target: str | None = None
    task: Literal["regression", "classification", "auto"] = "auto"
    format: str | None = None
    trust_pickle: bool = False
    trust: list[str] = field(default_factory=list)
    input_map: dict[str, str] = field(default_factory=dict)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    parity_tolerance: float = 1e-4
    name: str | None = None


def import_model(options: ImportOptions, say: Say) -> ModelCard:
    started = time.perf_counter()
    source = read_source(options.model, options.format)
    say(f"Read {options.model} ({source.format}, {len(source.data):,} bytes)")
    raw = datamod.read_csv(options.sample)
    frame = raw.frame
    columns = [str(c) for c in frame.columns]
    if options.target is not None and options.target not in columns:
        raise ModelImportError(
            f"--target {options.target!r} is not a column of {options.sample.name}; "
            f"columns: {', '.join(columns)}"
        )
    request = Request(
        frame=frame,
        columns=[c for c in columns if c != options.target],
        task=None if options.task == "auto" else options.task,
        numeric=options.numeric,
        categorical=options.categorical,
        input_map=options.input_map,
        trust_pickle=options.trust_pickle,
        trusted_types=options.trust,
    )
    conversion = CONVERTERS[source.format](source, request)
    task = conversion.task
    onnx_bytes = (
        text_labels(conversion.onnx_bytes) if task == "classification" else conversion.onnx_bytes
    )
    say(
        f"Model: {conversion.estimator} ({conversion.library}), {task}, features: "
        + ", ".join(
            f"{n} ({'num' if conversion.kinds[n] == 'numeric' else 'cat'})"
            for n in conversion.features
        )
    )
    x = datamod.model_frame(frame, {n: conversion.kinds[n] for n in conversion.features})
    x.index = pd.RangeIndex(
        1, len(x) + 1
    )  # parity names a failing row by its data row in the sample
    truth = _truth(frame[options.target], task, conversion.classes) if options.target else None

    say(f"Checking parity of the ONNX export with {conversion.library} on {len(x)} sample rows")
    original_predictions = None
    if task == "regression":
        if truth is not None:
            scale = float(np.std(truth[1]))
        else:
            original_predictions = np.asarray(conversion.original.predict(x), dtype=np.float64)
            scale = float(np.std(original_predictions))
    else:
        scale = 1.0
    parity, outputs = measure_parity(
        onnx_bytes=onnx_bytes,
        pipeline=conversion.original,
        frame=x,
        kinds=conversion.kinds,
        input_names=conversion.input_names,
        task=task,
        target_scale=scale,
        tolerance=options.parity_tolerance,
        wording=ParityWording(
            original=f"the original {conversion.library} model",
            rows=f"{options.sample.name}",
            advice="the export does not reproduce this model; raise --parity-tolerance only if "
            "that difference is acceptable",
        ),
    )
    metrics: dict[str, Any] = {}
    if truth is not None:
        keep, values = truth
        if task == "regression":
            metrics["test"] = regression_metrics(values, outputs[0].reshape(-1)[keep])
        else:
            assert conversion.classes is not None
            metrics["test"] = classification_metrics(
                list(values),
                list(outputs[0][keep].astype(str)),
                outputs[1][keep],
                conversion.classes,
            )

    explanation = (
        explain.write(
            options.output,
            onnx_bytes,
            pipeline=conversion.fitted,
            frame=x,
            task=task,
            classes=conversion.classes,
        )
        if conversion.fitted is not None
        # Without the source model there are no node covers: interventional TreeSHAP, with
        # rows of the sample as its background.
        else explain.write_interventional(
            options.output,
            onnx_bytes,
            frame=x,
            feeds=lambda rows: onnx_feeds(rows, conversion.kinds, conversion.input_names),
            task=task,
            classes=conversion.classes,
        )
    )
    card = ModelCard(
        name=model_name(options.name or options.model.stem),
        task=task,
        target=options.target or DEFAULT_TARGET,
        features=_features(x, conversion.kinds, conversion.input_names),
        classes=conversion.classes,
        model=ModelInfo(
            kind=f"imported-{conversion.library}",
            estimator=conversion.estimator,
            params=_plain_params(conversion.params),
        ),
        metrics=metrics,
        parity=parity,
        # For an imported model this describes the sample it was checked on, not its training.
        training_data=TrainingData(
            source=raw.source,
            sha256=raw.sha256,
            rows=len(frame),
            rows_used=len(frame),
            train_rows=0,
            test_rows=len(frame),
        ),
        versions=_versions() | conversion.versions,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        examples=_examples(x, conversion.kinds),
        prediction_distribution=prediction_distribution(outputs, task),
        artifact=ArtifactFiles(
            onnx_file=artifact.ONNX_FILE,
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            onnx_bytes=len(onnx_bytes),
        ),
        provenance=Provenance(
            source_file=options.model.name,
            source_sha256=source.sha256,
            source_bytes=len(source.data),
            format=source.format,
            library=conversion.library,
            library_version=conversion.library_version,
            converter=conversion.converter,
            trusted_pickle=source.format in PICKLE_FORMATS,
        ),
        explanation=explanation,
    )
    artifact.save(options.output, card, onnx_bytes)
    say("Measuring the serving footprint (a fresh process loads the artifact as a worker does)")
    card = card.model_copy(update={"footprint": measure_footprint(options.output)})
    assert card.footprint is not None
    say(f"Footprint: {card.footprint.summary()}")
    evaluation = _evaluation(
        onnx_bytes=onnx_bytes,
        original=conversion.original,
        x=x,
        task=task,
        truth=truth,
        outputs=outputs,
        explanation=(
            (options.output / explanation.file).read_bytes() if explanation.file else None
        ),
    )
    card = add_report(card, evaluation, options.output, say)
    artifact.save(options.output, card, onnx_bytes)
    say(f"Wrote {options.output} in {time.perf_counter() - started:.1f} s")
    return card


def _evaluation(
    *,
    onnx_bytes: bytes,
    original: FittedModel,
    x: pd.DataFrame,
    task: Task,
    truth: tuple[npt.NDArray[Any], npt.NDArray[Any]] | None,
    outputs: list[npt.NDArray[Any]],
    explanation: bytes | None,
) -> Evaluation:
    """The report's input: the sample is both what the model is described and evaluated on;
    quality is judged on the rows that have a target, parity on the same rows."""
    if truth is None:
        keep = np.ones(len(x), dtype=bool)
        target = None
    else:
        keep, values = truth
        target = pd.Series(values, name=None)
    rows = x[keep]
    return Evaluation(
        onnx_bytes=onnx_bytes,
        training=x,
        training_target=target,
        held_out=rows,
        truth=target,
        reference=reference_outputs(original, rows, task),
        predictions=onnx_predictions([o[keep] for o in outputs], task),
        explanation=explanation,
    )


def _truth(
    column: Any, task: str, classes: list[str] | None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Rows that have a target value, and those values (numbers, or class labels as text)."""
    present = ~column.str.strip().isin(MISSING_TOKENS).to_numpy()
    if task == "regression":
        try:
            values = datamod.parse_numeric(column).to_numpy()
        except (ValueError, TypeError) as exc:
            raise ModelImportError(
                f"the target column {column.name!r} holds non-numbers, but the model is a "
                "regression model"
            ) from exc
        return present, values[present]
    labels = column.astype(str).to_numpy()[present]
    assert classes is not None
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ModelImportError(
            f"the target column {column.name!r} has value(s) {', '.join(unknown[:10])} that are "
            f"not among the model's classes ({', '.join(classes)})"
        )
    return present, labels
