"""Build the report from a model card and an evaluation, and write it into the artifact."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
from matplotlib.figure import Figure

from modelship.build.report import numbers, plots
from modelship.build.report.numbers import Outputs, PredictFn
from modelship.build.report.page import PLOTS_DIR, Plot, Report
from modelship.contracts.card import ModelCard, ReportFiles, ReportPlot
from modelship.model_quality import classification_metrics, regression_metrics

REPORT_PAGE = "model-report.html"
MAX_DISTRIBUTIONS = 48  # panels (target included); a wider table shows the most important ones


@dataclass(frozen=True)
class Evaluation:
    """What the report is made from: what training has, and what an import has.

    Frames hold the feature columns as the model takes them (numbers as floats with NaN for
    missing, categories as text), like `training.data.model_frame` returns them. For an
    imported model (a card with `provenance`) `training` and `held_out` are the sample.
    """

    onnx_bytes: bytes
    training: pd.DataFrame
    training_target: pd.Series | None = None
    held_out: pd.DataFrame | None = None
    truth: pd.Series | None = None
    """The target on `held_out`; None when it is not known (no quality plots then)."""
    reference: npt.NDArray[Any] | None = None
    """The original model's output on `held_out` (regression: predictions; classification:
    class probabilities in the card's class order), for the parity plot."""
    predictions: Outputs | None = None
    """The ONNX model's (labels or values, probabilities) on `held_out`, if already computed."""
    seed: int = 0
    explanation: bytes | None = None
    """The artifact's explanation file (card.explanation), for the contributions summary."""


def served_model(onnx_bytes: bytes, card: ModelCard) -> PredictFn:
    """Predictions of the exported model for a frame: what the server will answer."""
    from modelship.build.training.export import onnx_feeds

    options = ort.SessionOptions()
    # One thread, as a server worker runs it: onnxruntime's default spins a thread per core,
    # which on a busy machine was three times slower than one.
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    kinds = {f.name: f.kind for f in card.features}
    inputs = {f.name: f.input_name for f in card.features}

    def predict(frame: pd.DataFrame) -> Outputs:
        outputs = session.run(None, onnx_feeds(frame, kinds, inputs))
        if card.task == "regression":
            return np.asarray(outputs[0]).reshape(-1), None
        return np.asarray(outputs[0]).reshape(-1).astype(str), np.asarray(outputs[1])

    return predict


def build_report(card: ModelCard, evaluation: Evaluation) -> Report:
    """Every plot this task, this card and this evaluation allow; notes for what is left out."""
    started = time.perf_counter()
    builder = _Builder(card, evaluation)
    builder.run()
    return Report(
        card=card,
        plots=builder.plots,
        notes=builder.notes,
        seconds=time.perf_counter() - started,
    )


def write_report(report: Report, artifact_dir: Path) -> ReportFiles:
    """Write the page and one SVG per plot; returns the card's `report` entry for them."""
    plots_dir = artifact_dir / PLOTS_DIR
    shutil.rmtree(plots_dir, ignore_errors=True)  # no plot of an earlier model stays behind
    plots_dir.mkdir(parents=True)
    entries = []
    for plot in report.plots:
        content = plot.svg.encode()
        (artifact_dir / plot.file).write_bytes(content)
        entries.append(
            ReportPlot(
                name=plot.name,
                title=plot.title,
                file=plot.file,
                sha256=hashlib.sha256(content).hexdigest(),
                key=plot.key,
            )
        )
    page = report.html().encode()
    (artifact_dir / REPORT_PAGE).write_bytes(page)
    return ReportFiles(
        page=REPORT_PAGE,
        page_sha256=hashlib.sha256(page).hexdigest(),
        plots=entries,
        notes=report.notes,
    )


def add_report(
    card: ModelCard, evaluation: Evaluation, artifact_dir: Path, say: Callable[[str], None]
) -> ModelCard:
    """Draw and write the report into `artifact_dir`; the card with its `report` entry."""
    say(f"Drawing the {'import' if card.provenance else 'training'} report")
    report = build_report(card, evaluation)
    files = write_report(report, artifact_dir)
    say(f"The report took {report.seconds:.1f} s: {artifact_dir / files.page}")
    return card.model_copy(update={"report": files})


class _Builder:
    def __init__(self, card: ModelCard, evaluation: Evaluation) -> None:
        self.card = card
        self.evaluation = evaluation
        self.signature = f"{card.name} · version {card.version}"
        self.plots: list[Plot] = []
        self.notes: list[str] = []
        self.importance: dict[str, Any] | None = None
        self.predict = served_model(evaluation.onnx_bytes, card)
        provenance = card.provenance
        self.words = plots.imported(provenance.library) if provenance else plots.TRAINED

    def add(
        self,
        name: str,
        figure: Figure,
        caption: str,
        data: dict[str, Any],
        note: str | None = None,
        *,
        key: bool = False,
        wide: bool = False,
    ) -> None:
        title = str(figure.get_suptitle() or figure.axes[0].get_title()).split("\n")[0]
        svg = plots.to_svg(figure, name, self.signature, note)
        self.plots.append(
            Plot(name, title, caption, svg, {**data, "note": note}, key=key, wide=wide)
        )

    def run(self) -> None:
        card, evaluation = self.card, self.evaluation
        words = self.words
        if card.leaderboard:
            self.leaderboard(card.leaderboard)
        elif card.provenance:
            self.notes.append(
                "An imported model: modelship did not search models for it, so there is no "
                "model comparison."
            )
        else:
            self.notes.append("One model was trained (no --model auto): there is no comparison.")
        held_out = evaluation.held_out
        if held_out is None or not len(held_out):
            self.notes.append("No held-out rows: no quality, importance or parity plots.")
        else:
            outputs = evaluation.predictions or self.predict(held_out)
            if evaluation.truth is None:
                self.notes.append(
                    "The sample has no target column (--target): the model's quality on it "
                    "(metrics, "
                    + (
                        "predicted vs actual, residuals"
                        if card.task == "regression"
                        else "confusion matrix, precision and recall, calibration"
                    )
                    + ") and the permutation importance could not be evaluated."
                    if card.provenance
                    else f"The {words.rows} have no target: no quality or importance plots."
                )
            else:
                truth = evaluation.truth.to_numpy()
                if card.task == "regression":
                    self.regression(truth.astype(np.float64), outputs[0].astype(np.float64))
                else:
                    self.classification(truth.astype(str), outputs)
                self.permutation_importance(held_out, truth)
            self.contributions(held_out)
            if evaluation.reference is None:
                self.notes.append(
                    "No original model to compare the ONNX export with: no parity plot."
                )
            else:
                self.parity(outputs, evaluation.reference)
        self.distributions()

    # --- the plots -----------------------------------------------------------------------
    def leaderboard(self, rows: list[dict[str, Any]]) -> None:
        metric = numbers.primary_score(self.card.task)
        columns = ["model", "rank", metric, f"{metric}_std", "configs", "config"] + [
            c[0] for c in plots.LEADERBOARD_COLUMNS
        ]
        data = {
            "metric": metric,
            "chosen": self.card.model.kind,
            "rows": [{k: r[k] for k in columns if k in r} for r in rows],
        }
        self.add(
            "leaderboard",
            plots.leaderboard(rows, metric, self.card.model.kind),
            f"Every candidate model, cross-validated on the training split: {metric} of its "
            "best configuration with its spread over the folds (configurations tried and the "
            "best of them in the table), and what each one costs. The chosen model is in blue; "
            "it was then fitted on the whole training split.",
            data,
            wide=True,
        )

    def regression(
        self, actual: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]
    ) -> None:
        target = self.card.target
        metrics = regression_metrics(actual, predicted)
        shown = numbers.sample(len(actual), numbers.SCATTER_POINTS, self.evaluation.seed)
        words = self.words
        note = shown.note(words.rows)
        summary = {"rows": len(actual), "shown": len(shown.index), "metrics": metrics}
        self.add(
            "predicted-vs-actual",
            plots.predicted_vs_actual(
                actual[shown.index], predicted[shown.index], target, metrics, words
            ),
            f"Each point is a row of the {words.split}: the model's prediction of {target} "
            "against the true value. Points on the line are exact; the spread around it is the "
            "error.",
            summary,
            note,
            key=True,
        )
        residual = actual - predicted
        self.add(
            "residuals",
            plots.residuals(predicted[shown.index], residual[shown.index], residual, target, words),
            "Errors against the prediction (a pattern means the model misses a structure) and "
            "their distribution over every test row.",
            {
                **summary,
                "mean_residual": float(residual.mean()),
                "median_abs_residual": float(np.median(np.abs(residual))),
            },
            note,
            wide=True,
        )

    def classification(self, truth: npt.NDArray[Any], outputs: Outputs) -> None:
        classes = self.card.classes or []
        words = self.words
        labels, probabilities = outputs
        assert probabilities is not None
        names, counts = numbers.confusion_matrix(list(truth), list(labels), classes)
        self.add(
            "confusion-matrix",
            plots.confusion(names, counts, words),
            "Rows are the true class, columns the predicted one; each cell counts "
            f"{words.rows} and its colour is that count's share of the true class, so the "
            "diagonal shows each class's recall whatever its size.",
            {"labels": names, "counts": counts, "rows": len(truth)},
            key=True,
            wide=len(names) > 12,
        )
        per_class = classification_metrics(list(truth), list(labels), probabilities, classes)
        self.add(
            "per-class",
            plots.per_class(per_class["per_class"], words),
            "Precision: of the rows predicted as the class, the share that are. Recall: of the "
            f"rows of the class, the share found. n is the number of {words.rows} of the class.",
            {"per_class": per_class["per_class"], "macro_f1": per_class["macro_f1"]},
        )
        index = {label: i for i, label in enumerate(classes)}
        if len(classes) == 2:
            positive = classes[1]
            scores = probabilities[:, 1].astype(np.float64)
            hits = truth == positive
            label = f"P({positive})"
        else:
            top = probabilities.argmax(axis=1)
            scores = probabilities.max(axis=1).astype(np.float64)
            known = np.array([index.get(t, -1) for t in truth])
            hits = known == top
            label = "the predicted class's probability"
        reliability = numbers.calibration(scores, hits)
        self.add(
            "calibration",
            plots.calibration(reliability, label, words),
            "Rows grouped by the probability the model gave; a calibrated model's groups lie on "
            "the diagonal (of rows given 0.8, 80 % are right). Below: rows per group."
            + (
                ""
                if len(classes) == 2
                else " With more than two classes this is the probability "
                "of the predicted class against how often it is the true one."
            ),
            {"label": label, **reliability},
        )
        if len(classes) == 2:
            curves = numbers.roc_pr(truth == classes[1], scores)
            self.add(
                "roc-pr",
                plots.roc_pr(curves, classes[1], words),
                f"How well P({classes[1]}) separates the classes at every threshold.",
                curves,
                wide=True,
            )

    def permutation_importance(self, held_out: pd.DataFrame, truth: npt.NDArray[Any]) -> None:
        card = self.card
        expected = truth.astype(np.float64) if card.task == "regression" else truth.astype(str)
        data = numbers.permutation_importance(
            self.predict,
            task=card.task,
            frame=held_out,
            truth=expected,
            classes=card.classes,
            seed=self.evaluation.seed,
            row_ms=card.footprint.latency_batch_ms / 1000 if card.footprint else None,
        )
        self.importance = data
        sampled = numbers.Sample(np.arange(data["rows"]), data["of_rows"])
        words = self.words
        self.add(
            "importance",
            plots.importance(data, words),
            f"How much {data['metric']} on the {words.split} drops when one feature's values "
            f"are shuffled ({data['repeats']} times, mean ± sd), measured on the exported model: "
            "a feature the model relies on drops it most.",
            data,
            sampled.note(words.rows),
            key=True,
        )

    def contributions(self, held_out: pd.DataFrame) -> None:
        """Mean |contribution| per column over held-out rows, beside permutation importance."""
        from modelship.build.training.export import onnx_feeds
        from modelship.model.explain import Explainer

        card, raw = self.card, self.evaluation.explanation
        if raw is None or card.explanation is None:
            reason = card.explanation.unavailable if card.explanation else None
            self.notes.append(
                "No per-prediction explanations for this model" + (f": {reason}" if reason else ".")
            )
            return
        explainer = Explainer(raw, len(card.features))
        # Interventional TreeSHAP pairs each row with every background row: fewer rows.
        limit = (
            numbers.INTERVENTIONAL_ROWS
            if explainer.method == "interventional TreeSHAP"
            else numbers.IMPORTANCE_ROWS
        )
        rows = numbers.sample(len(held_out), limit, self.evaluation.seed)
        frame = held_out.iloc[rows.index]
        feeds = onnx_feeds(
            frame,
            {f.name: f.kind for f in card.features},
            {f.name: f.input_name for f in card.features},
        )
        mean_abs = np.abs(explainer.explain(feeds).contributions).mean(axis=(0, 2))
        importance = (
            {f["feature"]: f["mean"] for f in self.importance["features"]}
            if self.importance
            else {}
        )
        data = {
            "method": explainer.method,
            "output_space": explainer.output_space,
            "features": sorted(
                (
                    {
                        "feature": f.name,
                        "mean_abs": float(m),
                        "importance": importance.get(f.name),
                    }
                    for f, m in zip(card.features, mean_abs, strict=True)
                ),
                key=lambda item: -float(item["mean_abs"] or 0.0),
            ),
        }
        self.add(
            "contributions",
            plots.contributions(data, self.words),
            f"Mean |contribution| of each column to the {self.words.split}'s predictions "
            f"({explainer.method}, in {explainer.output_space}; classes averaged), beside the "
            "permutation importance: what the model uses for each answer against what its "
            "accuracy depends on.",
            data,
            rows.note(self.words.rows),
        )

    def parity(self, outputs: Outputs, reference: npt.NDArray[Any]) -> None:
        card = self.card
        values, probabilities = outputs
        parity = card.parity
        if card.task == "regression":
            target = self.evaluation.training_target
            spread = np.std(target.to_numpy(dtype=np.float64) if target is not None else reference)
            scale = float(spread) or 1.0
            diffs = np.abs(values.astype(np.float64) - reference.astype(np.float64)) / scale
            unit = f"x the sd of {card.target} in the {'sample' if card.provenance else 'training'}"
            summary = f"max {parity.max_abs_diff:.3g} ({card.target})"
        else:
            assert probabilities is not None
            diffs = np.abs(probabilities.astype(np.float64) - reference).max(axis=1)
            unit = "largest probability difference"
            agreement = parity.label_agreement if parity.label_agreement is not None else 1.0
            summary = f"max {parity.max_abs_diff:.3g}; labels agree on {agreement:.2%} of rows"
        self.add(
            "parity",
            plots.parity(diffs, parity.tolerance, unit, summary, self.words),
            "The exported ONNX model (what the server runs) against the original "
            f"{self.words.original} model on every row of the {self.words.split}; the export is "
            "refused beyond the tolerance.",
            {
                "rows": len(diffs),
                "max_diff": float(diffs.max()) if len(diffs) else 0.0,
                "tolerance": parity.tolerance,
                "unit": unit,
            },
        )

    def distributions(self) -> None:
        card, evaluation = self.card, self.evaluation
        order = [f.name for f in card.features]
        if self.importance is not None:
            ranked = [f["feature"] for f in self.importance["features"]]
            order = ranked + [n for n in order if n not in ranked]
        kinds = {f.name: f.kind for f in card.features}
        panels: list[tuple[str, dict[str, Any], bool]] = []
        if evaluation.training_target is not None:
            numeric = card.task == "regression"
            panels.append(
                (
                    card.target,
                    numbers.distribution(evaluation.training_target, numeric, numbers.TOP_CLASSES),
                    True,
                )
            )
        room = MAX_DISTRIBUTIONS - len(panels)
        for name in order[:room]:
            panels.append(
                (
                    name,
                    numbers.distribution(evaluation.training[name], kinds[name] == "numeric"),
                    False,
                )
            )
        hidden = max(0, len(order) - room)
        self.add(
            "distributions",
            plots.distributions(panels, hidden, self.words),
            f"Each column in the {self.words.data.lower()}, over every row: a histogram of a "
            "number, the "
            "most frequent values of a category. Drift checks compare live requests with this. "
            + ("Features are in order of importance." if self.importance else ""),
            {"columns": {name: data for name, data, _ in panels}, "hidden": hidden},
            wide=True,
        )
