"""The report's plots, drawn with matplotlib from the numbers in `numbers` and saved as SVG.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global state). Text stays text
in the SVG (searchable, small, and readable by the tests); every plot names the model and its
version in a corner, and says when it shows a sample.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, cast

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

ACCENT = "#2457c5"
SECOND = "#e07b39"
MUTED = "#9aa3b2"
INK = "#1d2330"
GRID = "#e3e7ee"
CMAP = LinearSegmentedColormap.from_list("modelship", ["#ffffff", "#c9d7f5", ACCENT, "#0f2a66"])
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths
    "font.family": ["DejaVu Sans", "sans-serif"],
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.edgecolor": "#b8c0cc",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.7,
    "axes.axisbelow": True,
    "xtick.color": "#4a5263",
    "ytick.color": "#4a5263",
    "text.color": INK,
    "figure.facecolor": "white",
    "legend.frameon": False,
}
MAX_LABEL = 22  # characters of a class or category shown on an axis


@dataclass(frozen=True)
class Wording:
    """What the plots call the rows they show and the model the export is checked against:
    a trained model is evaluated on its held-out test split, an imported one on the sample
    given to `modelship import`."""

    split: str = "held-out test split"
    rows: str = "test rows"
    data: str = "Training data"
    original: str = "scikit-learn"


TRAINED = Wording()


def imported(library: str) -> Wording:
    return Wording(split="import sample", rows="sample rows", data="Sample", original=library)


def short(label: str) -> str:
    """Long names keep both ends (columns often differ only in a suffix)."""
    if len(label) <= MAX_LABEL:
        return label
    head = (MAX_LABEL - 1) // 2
    return f"{label[:head]}…{label[-(MAX_LABEL - 1 - head) :]}"


def fmt(value: float) -> str:
    return f"{value:.4g}"


def _style(**extra: Any) -> AbstractContextManager[None]:
    return mpl.rc_context(cast(Any, {**STYLE, **extra}))


def new_figure(width: float, height: float) -> Figure:
    with _style():
        return Figure(figsize=(width, height), layout="constrained")


def to_svg(figure: Figure, name: str, signature: str, note: str | None) -> str:
    """The figure as an SVG document, signed with the model and version, with the sample note."""
    with _style(**{"svg.hashsalt": name}):  # ids unique per plot, deterministic
        figure.text(0.995, 0.004, signature, ha="right", va="bottom", fontsize=7, color=MUTED)
        if note:
            figure.text(
                0.005,
                0.004,
                f"Shows {note}.",
                ha="left",
                va="bottom",
                fontsize=7.5,
                color="#8a5a00",
            )
        figure.get_layout_engine().set(h_pad=0.06, rect=(0, 0.03, 1, 0.97))  # type: ignore[union-attr, call-arg]
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def inline_svg(svg: str) -> str:
    """The <svg> element alone, for embedding in HTML (no XML declaration or DOCTYPE)."""
    start = svg.index("<svg")
    return re.sub(r"<!--.*?-->", "", svg[start:], flags=re.S).strip()


def _in(axes: Axes, *lines: str) -> None:
    axes.text(
        0.03,
        0.97,
        "\n".join(lines),
        transform=axes.transAxes,
        va="top",
        ha="left",
        fontsize=9,
        bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": GRID},
    )


# --- model comparison ------------------------------------------------------------------------
LEADERBOARD_COLUMNS = [  # (row key, axis title, scale to the unit shown)
    ("seconds", "CV time (s)", 1.0),
    ("model_bytes", "model size (MB)", 1e-6),
    ("latency_row_ms", "latency, 1 row (ms)", 1.0),
    ("latency_batch_ms", "latency, 1,000 rows (ms)", 1.0),
    ("serving_rss_mb", "serving memory (MB)", 1.0),
]


def leaderboard(rows: list[dict[str, Any]], metric: str, chosen: str) -> Figure:
    models = [str(r["model"]) for r in rows]
    extra = [
        c for c in LEADERBOARD_COLUMNS if any(isinstance(r.get(c[0]), int | float) for r in rows)
    ]
    figure = new_figure(2.6 + 2.1 * (1 + len(extra)), 1.3 + 0.34 * len(models))
    axes = figure.subplots(1, 1 + len(extra), sharey=True, squeeze=False)[0]
    colors = [ACCENT if m == chosen else MUTED for m in models]
    y = np.arange(len(models))
    means = [float(r.get(metric, math.nan)) for r in rows]
    spreads = [float(r.get(f"{metric}_std", 0.0)) for r in rows]
    first = axes[0]
    first.barh(
        y,
        means,
        xerr=spreads,
        color=colors,
        height=0.6,
        capsize=2.5,
        error_kw={"elinewidth": 1, "ecolor": INK},
    )
    low = min(m - s for m, s in zip(means, spreads, strict=True))
    high = max(m + s for m, s in zip(means, spreads, strict=True))
    pad = (high - low) * 0.15 or 0.05
    first.set_xlim(max(low - pad, -1.0) if low > 0 else low - pad, high + pad)
    first.set_title(f"{metric} (mean ± sd over folds)")
    first.set_yticks(y, models)
    first.invert_yaxis()
    for key, title, scale in extra:
        axes_ = axes[1 + extra.index((key, title, scale))]
        values = [r.get(key) for r in rows]
        shown = [float(v) * scale if isinstance(v, int | float) else 0.0 for v in values]
        axes_.barh(y, shown, color=colors, height=0.6)
        axes_.set_title(title)
        for i, value in enumerate(values):
            text = "n/a" if not isinstance(value, int | float) else fmt(float(value) * scale)
            axes_.text(shown[i], i, f" {text}", va="center", fontsize=8, color=INK)
        axes_.margins(x=0.3)
    figure.suptitle(f"Cross-validated on the training split; chosen: {chosen}", fontweight="bold")
    return figure


# --- regression ------------------------------------------------------------------------------
def predicted_vs_actual(
    actual: npt.NDArray[np.float64],
    predicted: npt.NDArray[np.float64],
    target: str,
    metrics: dict[str, Any],
    words: Wording,
) -> Figure:
    figure = new_figure(6.2, 5.4)
    axes = figure.subplots()
    axes.scatter(actual, predicted, s=9, alpha=0.45, color=ACCENT, linewidths=0, gid="points")
    low = float(min(actual.min(), predicted.min()))
    high = float(max(actual.max(), predicted.max()))
    axes.plot([low, high], [low, high], color=SECOND, linewidth=1.2, label="perfect prediction")
    axes.set_xlabel(f"actual {target}")
    axes.set_ylabel(f"predicted {target}")
    axes.set_title(f"Predicted vs actual {target} ({words.split})")
    axes.legend(loc="lower right")
    _in(
        axes,
        *(
            f"{k.upper() if k != 'r2' else 'R²'} {fmt(v)}"
            for k, v in metrics.items()
            if isinstance(v, float)
        ),
    )
    return figure


def residuals(
    predicted: npt.NDArray[np.float64],
    residual: npt.NDArray[np.float64],
    all_residuals: npt.NDArray[np.float64],
    target: str,
    words: Wording,
) -> Figure:
    figure = new_figure(9.4, 4.2)
    left, right = figure.subplots(1, 2, width_ratios=[1.6, 1])
    left.scatter(predicted, residual, s=9, alpha=0.45, color=ACCENT, linewidths=0)
    left.axhline(0, color=SECOND, linewidth=1.2)
    left.set_xlabel(f"predicted {target}")
    left.set_ylabel(f"actual - predicted {target}")
    left.set_title("Residuals vs prediction")
    right.hist(all_residuals, bins=40, color=ACCENT, alpha=0.85)
    right.axvline(0, color=SECOND, linewidth=1.2)
    right.set_xlabel(f"actual - predicted {target}")
    right.set_ylabel(words.rows)
    right.set_title(f"Residuals, all {len(all_residuals):,} {words.rows}")
    figure.suptitle(f"Residuals on the {words.split}", fontweight="bold")
    return figure


# --- classification --------------------------------------------------------------------------
ANNOTATE_UP_TO = 30  # classes; beyond that the cell counts are only in the colours and the data


def confusion(labels: list[str], counts: list[list[int]], words: Wording) -> Figure:
    n = len(labels)
    matrix = np.asarray(counts, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    side = min(max(4.2, 1.8 + 0.36 * n), 13.0)
    figure = new_figure(side + 1.4, side + 0.6)
    axes = figure.subplots()
    mesh = axes.pcolormesh(share, cmap=CMAP, vmin=0, vmax=1, edgecolors="white", linewidth=0.5)
    axes.set_xlim(0, n)
    axes.set_ylim(n, 0)
    axes.set_aspect("equal")
    axes.grid(False)
    ticks = np.arange(n) + 0.5
    size = 9 if n <= 12 else max(5.5, 9 - (n - 12) * 0.2)
    axes.set_xticks(ticks, [short(x) for x in labels], rotation=90 if n > 6 else 0, fontsize=size)
    axes.set_yticks(ticks, [short(x) for x in labels], fontsize=size)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("actual class")
    total = int(matrix.sum())
    axes.set_title(f"Confusion matrix: {total:,} {words.rows} ({words.split})")
    if n <= ANNOTATE_UP_TO:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    axes.text(
                        j + 0.5,
                        i + 0.5,
                        f"{int(matrix[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=size,
                        color="white" if share[i, j] > 0.55 else INK,
                        gid=f"cell-{i}-{j}",
                    )
    bar = figure.colorbar(mesh, ax=axes, shrink=0.7, pad=0.02)
    bar.set_label("share of the actual class's rows")
    return figure


def per_class(report: dict[str, dict[str, float]], words: Wording) -> Figure:
    labels = list(report)
    n = len(labels)
    figure = new_figure(7.0, 1.4 + 0.36 * n)
    axes = figure.subplots()
    y = np.arange(n)
    precision = [report[c]["precision"] for c in labels]
    recall = [report[c]["recall"] for c in labels]
    axes.barh(y - 0.19, precision, height=0.36, color=ACCENT, label="precision")
    axes.barh(y + 0.19, recall, height=0.36, color=SECOND, label="recall")
    axes.set_yticks(y, [f"{short(c)} (n={int(report[c]['support'])})" for c in labels])
    axes.invert_yaxis()
    axes.set_xlim(0, 1.0)
    axes.set_xlabel(words.split)
    axes.set_title("Precision and recall per class")
    figure.legend(loc="outside lower center", ncols=2)
    return figure


def calibration(data: dict[str, Any], label: str, words: Wording) -> Figure:
    figure = new_figure(6.2, 5.6)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="perfectly calibrated")
    top.plot(data["mean_predicted"], data["observed"], marker="o", color=ACCENT, label="model")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed frequency")
    top.set_title(f"Calibration: {label}")
    top.legend(loc="upper left")
    edges = np.asarray(data["edges"])
    bottom.bar(
        edges[:-1],
        data["count"],
        width=np.diff(edges),
        align="edge",
        color=MUTED,
        edgecolor="white",
    )
    bottom.set_xlabel(f"predicted probability ({label})")
    bottom.set_ylabel(words.rows)
    return figure


def roc_pr(data: dict[str, Any], positive: str, words: Wording) -> Figure:
    figure = new_figure(9.4, 4.4)
    left, right = figure.subplots(1, 2)
    roc, pr = data["roc"], data["pr"]
    left.plot(roc["fpr"], roc["tpr"], color=ACCENT, linewidth=1.6, label=f"AUC {roc['auc']:.3f}")
    left.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="chance")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    left.set_title("ROC curve")
    left.legend(loc="lower right")
    right.plot(
        pr["recall"],
        pr["precision"],
        color=ACCENT,
        linewidth=1.6,
        label=f"average precision {pr['average_precision']:.3f}",
    )
    right.axhline(
        pr["prevalence"],
        color=MUTED,
        linestyle="--",
        linewidth=1,
        label=f"chance ({pr['prevalence']:.2f})",
    )
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_ylim(0, 1.02)
    right.set_title("Precision-recall curve")
    right.legend(loc="lower left")
    for axes in (left, right):
        axes.set_xlim(0, 1)
    figure.suptitle(f"Positive class {positive!r}, {words.split}", fontweight="bold")
    return figure


# --- every task ------------------------------------------------------------------------------
MAX_IMPORTANCES = 25


def importance(data: dict[str, Any], words: Wording) -> Figure:
    shown = data["features"][:MAX_IMPORTANCES]
    n = len(shown)
    figure = new_figure(7.0, 1.5 + 0.3 * n)
    axes = figure.subplots()
    y = np.arange(n)
    axes.barh(
        y,
        [f["mean"] for f in shown],
        xerr=[f["std"] for f in shown],
        color=ACCENT,
        height=0.6,
        capsize=2,
        error_kw={"elinewidth": 1, "ecolor": INK},
    )
    axes.set_yticks(y, [short(f["feature"]) for f in shown])
    axes.invert_yaxis()
    axes.axvline(0, color=INK, linewidth=0.8)
    axes.set_xlabel(f"drop in {data['metric']} when the feature is shuffled (mean ± sd)")
    more = len(data["features"]) - n
    axes.set_title(
        f"Permutation importance on the {words.split} ({data['metric']} "
        f"{data['baseline']:.4g} unshuffled)"
        + (f"; {more} less important not shown" if more else "")
    )
    return figure


def contributions(data: dict[str, Any], words: Wording) -> Figure:
    """Mean |contribution| per column, and the permutation importance in the same order."""
    shown = data["features"][:MAX_IMPORTANCES]
    n = len(shown)
    with_importance = any(f["importance"] is not None for f in shown)
    figure = new_figure(9.0 if with_importance else 7.0, 1.5 + 0.3 * n)
    panels = figure.subplots(1, 2 if with_importance else 1, squeeze=False)[0]
    y = np.arange(n)
    left = panels[0]
    left.barh(y, [f["mean_abs"] for f in shown], color=ACCENT, height=0.6)
    left.set_yticks(y, [short(f["feature"]) for f in shown])
    left.invert_yaxis()
    left.set_xlabel("mean |contribution|")
    left.set_title(f"Per-prediction contributions on the {words.split}")
    if with_importance:
        right = panels[1]
        right.barh(y, [f["importance"] or 0.0 for f in shown], color=SECOND, height=0.6)
        right.set_yticks(y, [""] * n)
        right.invert_yaxis()
        right.axvline(0, color=INK, linewidth=0.8)
        right.set_xlabel("permutation importance (drop in the metric)")
        right.set_title("Permutation importance")
    return figure


def distributions(
    panels: Sequence[tuple[str, dict[str, Any], bool]], hidden: int, words: Wording
) -> Figure:
    """Small multiples: (name, numbers, is_target) per panel, target first."""
    columns = 4 if len(panels) > 6 else max(2, min(3, len(panels)))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(2.45 * columns, 0.6 + 2.05 * rows)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, (name, data, is_target) in zip(grid.flat, panels, strict=False):
        color = SECOND if is_target else ACCENT
        title = f"{short(name)} (target)" if is_target else short(name)
        if data["kind"] == "numeric":
            edges = np.asarray(data["edges"])
            if len(edges):
                # One filled outline per histogram: a bar per bin is an artist per bin, which
                # made this figure most of the report's time on wide tables.
                axes.stairs(data["counts"], edges, fill=True, color=color, linewidth=0)
            if data["missing"]:
                title += f"\n{data['missing']:,} missing"
        else:
            labels = [short(c) for c in data["categories"]]
            counts = list(data["counts"])
            if data["other_categories"]:
                labels.append(f"{data['other_categories']:,} others")
                counts.append(data["other_count"])
            y = np.arange(len(labels))
            axes.barh(y, counts, color=color, height=0.7)
            axes.set_yticks(y, labels, fontsize=max(5.5, 8 - 0.15 * len(labels)))
            axes.invert_yaxis()
        axes.set_title(title, fontsize=9)
        axes.tick_params(labelsize=7)
    for axes in list(grid.flat)[len(panels) :]:
        axes.set_visible(False)
    rows_total = panels[0][1]["rows"] if panels else 0
    suffix = f"; {hidden} less important features not shown" if hidden else ""
    figure.suptitle(
        f"{words.data}: {rows_total:,} rows, one panel per column (counts){suffix}",
        fontweight="bold",
    )
    return figure


def parity(
    diffs: npt.NDArray[np.float64],
    tolerance: float,
    unit: str,
    summary: str,
    words: Wording,
) -> Figure:
    """Histogram of per-row differences on a log scale (drawn as log10 on a linear axis: a
    matplotlib log axis costs a second of text layout for its tick labels)."""
    figure = new_figure(6.6, 3.8)
    axes = figure.subplots()
    exact = int(np.sum(diffs == 0))
    positive = diffs[diffs > 0]
    logs = np.log10(positive)
    low = math.floor(min(float(logs.min()) if len(logs) else 0.0, math.log10(tolerance)) - 0.5)
    high = math.ceil(max(float(logs.max()) if len(logs) else 0.0, math.log10(tolerance)) + 0.5)
    if len(logs):
        axes.hist(logs, bins=list(np.linspace(low, high, 40)), color=ACCENT)
    axes.axvline(
        math.log10(tolerance), color="#b3261e", linewidth=1.4, label=f"tolerance {tolerance:g}"
    )
    ticks = list(range(low, high + 1, max(1, (high - low) // 8)))
    axes.set_xticks(ticks, [f"1e{t}" for t in ticks])
    axes.set_xlim(low, high)
    axes.set_xlabel(f"|ONNX - {words.original}| per row ({unit})")
    axes.set_ylabel(words.rows)
    axes.set_title(f"Export parity: ONNX vs {words.original} on the {words.split}")
    axes.legend(loc="upper right")
    lines = [summary] + ([f"{exact:,} rows exactly equal"] if exact else [])
    _in(axes, *lines)
    return figure
