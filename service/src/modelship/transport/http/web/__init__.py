"""The page for people at `GET /`: a form generated from the model card, and a CSV upload.

Plain HTML, CSS and JavaScript shipped inside the package (static/): no build step, no framework,
nothing fetched at run time, so it works offline.
"""

from __future__ import annotations

from html import escape
from pathlib import Path, PurePosixPath

import orjson
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from modelship import __version__
from modelship.contracts.card import Feature, ModelCard

STATIC = Path(__file__).parent / "static"
MAX_OPTIONS = 200  # above this a category field is a text box with suggestions


def install_web_page(
    app: FastAPI, card: ModelCard, needs_key: bool, candidate: ModelCard | None = None
) -> None:
    page = render_page(card, needs_key, candidate).encode()
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


def _field(feature: Feature) -> str:
    name = escape(feature.name)
    fid = f"f-{escape(feature.input_name)}"
    common = f'id="{fid}" name="{name}" aria-describedby="{fid}-hint {fid}-error"'
    if feature.numeric is not None:
        stats = feature.numeric
        hint = (
            f"seen in training: {stats.min:g} to {stats.max:g} (median {stats.median:g}); "
            "leave empty to use the median"
        )
        control = (
            f'<input type="number" step="any" {common} data-kind="numeric" '
            f'placeholder="{stats.median:g}">'
        )
    else:
        categories = feature.categories or []
        hint = f"{len(categories)} categories seen in training"
        if len(categories) <= MAX_OPTIONS:
            options = "".join(
                f'<option value="{escape(c)}">{escape(c)}</option>' for c in categories
            )
            control = f'<select {common} data-kind="categorical">{options}</select>'
        else:
            options = "".join(f'<option value="{escape(c)}">' for c in categories)
            control = (
                f'<input type="text" list="{fid}-list" {common} data-kind="categorical">'
                f'<datalist id="{fid}-list">{options}</datalist>'
            )
    return (
        f'<div class="field" data-field="{name}">'
        f'<label for="{fid}">{name}</label>{control}'
        f'<small id="{fid}-hint" class="hint">{escape(hint)}</small>'
        f'<small id="{fid}-error" class="field-error" role="alert"></small>'
        "</div>"
    )


def _report_links(card: ModelCard) -> tuple[str, str]:
    """The header's link to the training report, and the key plots shown beside the form."""
    if card.report is None:
        return "", ""
    name = "import report" if card.provenance else "training report"
    link = f' · <a id="report-link" href="/model/report" target="_blank">{name.capitalize()}</a>'
    figures = "".join(
        f'<figure><img src="/model/report/{escape(PurePosixPath(p.file).name)}" '
        f'alt="{escape(p.title)}" loading="lazy">'
        f"<figcaption>{escape(p.title)}</figcaption></figure>"
        for p in card.report.plots
        if p.key
    )
    if not figures:  # e.g. an import without a target: nothing to show about quality
        return link, ""
    rows = "the import sample" if card.provenance else "the held-out test split"
    aside = (
        '<aside class="key-plots" aria-labelledby="plots-title">'
        '<h2 id="plots-title">How the model does</h2>'
        f'{figures}<p class="hint">On {rows}; every plot is in the '
        f'<a href="/model/report" target="_blank">{name}</a>.</p></aside>'
    )
    return link, aside


def _capacity(card: ModelCard) -> str:
    """What one replica serves, as `modelship capacity` measured it (absent until measured)."""
    capacity = card.capacity
    if capacity is None or not capacity.points:
        return ""
    items = "".join(f"<li>{escape(point.describe())}</li>" for point in capacity.points)
    return (
        f'<div id="capacity"><p>Capacity of one replica, measured {escape(capacity.measured_at)} '
        f"on {escape(capacity.cpu_model)}:</p><ul>{items}</ul></div>"
    )


def render_page(card: ModelCard, needs_key: bool, candidate: ModelCard | None = None) -> str:
    """The whole page, built once at start-up from the card (and a rollout's candidate's)."""
    data = {
        "features": [
            {"name": f.name, "kind": f.kind, "id": f"f-{f.input_name}"} for f in card.features
        ],
        "examples": card.examples,
        "classes": card.classes,
        "target": card.target,
        "task": card.task,
        # The form then asks /predict?explain=true and draws each prediction's contributions.
        "explainable": card.explanation is not None and card.explanation.method is not None,
    }
    # Safe inside <script>: no "</" can close the tag early.
    data_json = orjson.dumps(data).decode().replace("</", "<\\/")
    fields = "\n".join(_field(f) for f in card.features)
    key_box = (
        '<div class="field key"><label for="api-key">API key</label>'
        '<input type="password" id="api-key" autocomplete="off" '
        'placeholder="required by this server"><small class="hint">'
        "sent as X-API-Key with each request; kept in this tab only</small></div>"
        if needs_key
        else ""
    )
    metric = ", ".join(
        f"{k} {v:.4g}" for k, v in card.metrics.get("test", {}).items() if isinstance(v, float)
    )
    evaluated = "on the import sample" if card.provenance else "test"
    quality = (
        f"{evaluated} {escape(metric)}" if metric else "not evaluated (no target in the sample)"
    )
    title = escape(card.name)
    report_link, key_plots = _report_links(card)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · modelship</title>
<link rel="stylesheet" href="/ui/style.css">
</head>
<body>
<header>
  <h1>{title}</h1>
  <p>{escape(card.task.capitalize())} of <b>{escape(card.target)}</b> with
  {escape(card.model.estimator)} · version <code>{escape(card.version)}</code>
  · {quality} · <a href="/docs">API docs</a>{report_link}</p>
  {_capacity(card)}
{_rollout_line(candidate)}
</header>
<main>
{key_box}
<div class="{"with-plots" if key_plots else ""}">
<section aria-labelledby="one-title">
  <h2 id="one-title">Predict one row</h2>
  <form id="predict-form" novalidate>
    <div class="fields">
{fields}
    </div>
    <div class="actions">
      <button type="submit" id="predict-button">Predict</button>
      <button type="button" id="example-button">Fill an example row</button>
    </div>
    <p id="form-error" class="error" role="alert"></p>
  </form>
  <div id="result" class="result" aria-live="polite" hidden></div>
</section>
{key_plots}
</div>
<section aria-labelledby="quality-title" id="live-quality">
  <h2 id="quality-title">Live quality</h2>
  <p class="hint">The model's metrics on the latest predictions that got their true value
  (<code>POST /feedback</code> with each answer's <code>id</code>), beside the model card's.</p>
  <div class="table-wrap"><table id="quality-table"></table></div>
  <p id="quality-state"></p>
  <button type="button" id="quality-button">Refresh</button>
</section>
<section aria-labelledby="csv-title">
  <h2 id="csv-title">Predict a CSV file</h2>
  <form id="csv-form" novalidate>
    <input type="file" id="csv-file" name="file" accept=".csv,text/csv">
    <button type="submit" id="csv-button">Upload and predict</button>
  </form>
  <p class="hint">The file needs a header row naming the columns
  {escape(", ".join(f.name for f in card.features))}; other columns are kept.</p>
  <div id="csv-error" class="error" role="alert"></div>
  <div id="csv-result" hidden>
    <p id="csv-summary"></p>
    <a id="csv-download" download="predictions.csv" href="#">Download the whole result</a>
    <div class="table-wrap"><table id="csv-preview"></table></div>
  </div>
</section>
</main>
<footer>modelship {escape(__version__)}</footer>
<script id="model-data" type="application/json">{data_json}</script>
<script src="/ui/app.js"></script>
</body>
</html>
"""


def _rollout_line(candidate: ModelCard | None) -> str:
    """Both versions of a rollout: the primary is in the header line above, the candidate here
    (each answer on the page names the version that produced it)."""
    if candidate is None:
        return ""
    return (
        f'<p class="rollout">Rollout: candidate {escape(candidate.model.estimator)} · version '
        f"<code>{escape(candidate.version)}</code> served beside the primary · "
        '<a href="/rollout">gates and verdict</a></p>'
    )
