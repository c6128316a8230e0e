"""The report (its plots and notes) as one self-contained HTML page: plots inline as SVG, styles
inline, no script.

Nothing is fetched: the page works offline, from the artifact directory, and under the strict
Content-Security-Policy the server sends with it. The numbers behind every plot are in a JSON
block (`<script id="report-data" type="application/json">`, data, never run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

import orjson

from modelship import __version__
from modelship.build.report.plots import inline_svg
from modelship.contracts.capacity import Capacity
from modelship.contracts.card import ModelCard

PLOTS_DIR = "report"


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    caption: str
    svg: str
    data: dict[str, Any]
    key: bool = False  # shown on the web page next to the form
    wide: bool = False  # takes the page's whole width

    @property
    def file(self) -> str:
        return f"{PLOTS_DIR}/{self.name}.svg"


@dataclass(frozen=True)
class Report:
    card: ModelCard
    plots: list[Plot]
    notes: list[str] = field(default_factory=list)  # what is not shown, and why
    seconds: float = 0.0

    def plot(self, name: str) -> Plot:
        for plot in self.plots:
            if plot.name == name:
                return plot
        raise KeyError(name)

    def html(self) -> str:
        return render(self)


HEADINGS = {
    "leaderboard": "Model comparison",
    "predicted-vs-actual": "Predicted vs actual",
    "residuals": "Residuals",
    "confusion-matrix": "Confusion matrix",
    "per-class": "Precision and recall per class",
    "calibration": "Calibration",
    "roc-pr": "ROC and precision-recall",
    "importance": "Feature importance",
    "contributions": "Per-prediction contributions",
    "distributions": "Training data",
    "parity": "ONNX export parity",
}

STYLE = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee8; --accent: #2457c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: #f6f7fa; }
header, main, footer { max-width: 1280px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
code { font-size: 13px; background: #eef1f6; padding: 1px 4px; border-radius: 3px; }
.summary { display: grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr));
  gap: 12px; margin: 18px 0; }
.summary div { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 14px; }
.summary h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); margin: 0 0 6px; }
.summary table { border-collapse: collapse; width: 100%; font-size: 14px; }
.summary td { padding: 1px 0; vertical-align: top; }
.summary td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
nav { font-size: 14px; margin: 0 0 8px; }
nav a { color: var(--accent); margin-right: 12px; white-space: nowrap; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
  gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px; min-width: 0; }
figure.wide { grid-column: 1 / -1; }
figure h2 { margin: 0 0 8px; font-size: 17px; }
figure svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 6px; }
.notes { color: var(--muted); font-size: 14px; }
footer { color: var(--muted); font-size: 12.5px; padding: 18px 20px 28px; }
@media (max-width: 640px) { .plots { grid-template-columns: 1fr; } }
"""


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{_number(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _summary(report: Report) -> str:
    card = report.card
    test = {k: v for k, v in card.metrics.get("test", {}).items() if not isinstance(v, dict)}
    data = card.training_data
    parity = card.parity
    source = card.provenance
    if source is None:
        quality = ("Test metrics", [*test.items(), ("test rows", data.test_rows)])
        rows = [
            ("file", data.source),
            ("rows used", f"{data.rows_used:,} of {data.rows:,}"),
            ("training / test", f"{data.train_rows:,} / {data.test_rows:,}"),
        ]
        origin: list[tuple[str, Any]] = []
    else:  # the card's training data is the sample the import was checked on
        quality = (
            "Metrics on the sample",
            [*test.items(), ("sample rows", data.test_rows)]
            if test
            else [("not evaluated", "the sample has no target")],
        )
        rows = [("file", data.source), ("rows", f"{data.rows:,}")]
        origin = [("imported from", source.source_file), ("format", source.format)]
    boxes = [
        quality,
        (
            "Training data" if source is None else "Sample",
            [*rows, ("sha256", f"{data.sha256[:16]}…")],
        ),
        (
            "ONNX parity",
            [
                ("rows compared", parity.rows),
                ("max abs difference", parity.max_abs_diff),
                ("tolerance", parity.tolerance),
            ]
            + (
                [("labels agree", f"{parity.label_agreement:.2%}")]
                if parity.label_agreement is not None
                else []
            ),
        ),
        (
            "Model",
            [
                ("kind", card.model.kind),
                ("estimator", card.model.estimator),
                ("features", len(card.features)),
                ("ONNX size", f"{card.artifact.onnx_bytes / 1e6:.2f} MB"),
                *origin,
            ]
            + ([("classes", len(card.classes))] if card.classes else []),
        ),
    ]
    if card.search is not None and card.search.families:
        # What was searched: why the winner won is only clear beside what it was up against.
        boxes.append(
            (
                f"Search ({card.search.seconds:g} s of {card.search.time_budget_seconds:g} s)",
                [
                    (
                        family["model"],
                        f"{family['configs']}/{family['of_configs']} configurations, "
                        + (
                            f"best {family['best_score']:.4f}: {family['best_config']}"
                            if family["best_config"]
                            else family["untried"]
                        )
                        + f" ({family['seconds']:g} s)",
                    )
                    for family in card.search.families
                ],
            )
        )
    return "".join(f"<div><h2>{escape(t)}</h2>{_table(rows)}</div>" for t, rows in boxes) + (
        capacity_box(card.capacity)
    )


# The capacity box is measured after the report is drawn (`modelship capacity`), so it sits
# between markers that `with_capacity` replaces in the written page.
CAPACITY_START, CAPACITY_END = "<!-- capacity -->", "<!-- /capacity -->"


def capacity_box(capacity: Capacity | None) -> str:
    """The summary's capacity box: what one confined replica serves, or how to measure it."""
    if capacity is None:
        rows: list[tuple[str, Any]] = [("not measured", "modelship capacity measures it")]
    else:
        rows = [
            (
                f"{p.cpu} CPU, {p.memory}, {p.workers} worker(s), {p.rows_per_request} row(s)",
                f"{p.max_rps:g} req/s (p99 {p.p99_ms:.1f} ms, {p.cpu_ms_per_request:.2f} ms CPU "
                f"per request, {p.memory_mib:.0f} MiB)",
            )
            for p in capacity.points
        ]
        rows += [("measured", capacity.measured_at), ("on", capacity.cpu_model)]
    title = "Capacity of one replica" + (
        f" (p99 ≤ {capacity.points[0].p99_target_ms:g} ms)" if capacity and capacity.points else ""
    )
    return (
        f'{CAPACITY_START}<div id="capacity"><h2>{escape(title)}</h2>{_table(rows)}</div>'
        f"{CAPACITY_END}"
    )


def with_capacity(page: str, capacity: Capacity) -> str:
    """The written report page with its capacity box replaced by `capacity`'s."""
    start, end = page.find(CAPACITY_START), page.find(CAPACITY_END)
    if start < 0 or end < 0:  # a report drawn before the box existed: add it to the summary
        marker = '<section class="summary" aria-label="Summary">'
        at = page.find(marker)
        if at < 0:
            return page
        at += len(marker)
        return page[:at] + capacity_box(capacity) + page[at:]
    return page[:start] + capacity_box(capacity) + page[end + len(CAPACITY_END) :]


def render(report: Report) -> str:
    card = report.card
    name = escape(card.name)
    kind, made = ("import", "imported") if card.provenance else ("training", "trained")
    # an imported model's columns are drawn from the import sample, not its training data
    headings = {**HEADINGS, "distributions": "Sample"} if card.provenance else HEADINGS
    figures = "\n".join(
        f'<figure id="{p.name}" class="{"wide" if p.wide else ""}">'
        f"<h2>{escape(headings.get(p.name, p.title))}</h2>\n{inline_svg(p.svg)}\n"
        f"<figcaption>{escape(p.caption)}"
        + (f" Shows {escape(p.data['note'])}." if p.data.get("note") else "")
        + "</figcaption></figure>"
        for p in report.plots
    )
    contents = " ".join(
        f'<a href="#{p.name}">{escape(headings.get(p.name, p.title))}</a>' for p in report.plots
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    data = {
        "model": card.name,
        "version": card.version,
        "task": card.task,
        "target": card.target,
        "plots": {p.name: p.data for p in report.plots},
    }
    data_json = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · {kind} report · modelship</title>
<style>{STYLE}</style>
</head>
<body>
<header>
  <h1>{kind.capitalize()} report: {name}</h1>
  <p>{escape(card.task.capitalize())} of <b>{escape(card.target)}</b> with
  {escape(card.model.estimator)} · version <code>{escape(card.version)}</code> ·
  {made} {escape(card.created_at)}</p>
</header>
<main>
<section class="summary" aria-label="Summary">{_summary(report)}</section>
<nav aria-label="Plots">{contents}</nav>
<div class="plots">
{figures}
</div>
{f'<section class="notes"><h2>Not shown</h2><ul>{notes}</ul></section>' if notes else ""}
</main>
<footer>Made by modelship {escape(__version__)} when the model was {made}, in
{report.seconds:.1f} s. Each plot is also in the artifact as <code>report/NAME.svg</code>; the
numbers behind them are in this page's <code>report-data</code> JSON block.</footer>
<script id="report-data" type="application/json">{data_json}</script>
</body>
</html>
"""
