// The modelship page: plain JavaScript, no framework, no build step, nothing fetched but our API.
"use strict";

const model = JSON.parse(document.getElementById("model-data").textContent);
const $ = (id) => document.getElementById(id);
let nextExample = 0;

function apiHeaders(extra) {
  const headers = Object.assign({}, extra);
  const keyBox = $("api-key");
  if (keyBox && keyBox.value) headers["X-API-Key"] = keyBox.value.trim();
  return headers;
}

function fieldOf(name) {
  const feature = model.features.find((f) => f.name === name);
  return feature ? $(feature.id) : null;
}

function clearErrors() {
  document.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
  document.querySelectorAll(".field.invalid").forEach((el) => el.classList.remove("invalid"));
  $("form-error").textContent = "";
}

function showFieldError(name, text) {
  const input = fieldOf(name);
  if (!input) return false;
  $(input.id + "-error").textContent = text;
  input.closest(".field").classList.add("invalid");
  return true;
}

function describe(detail) {
  return detail.problem + (detail.allowed ? " (allowed: " + detail.allowed + ")" : "");
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return typeof body.error === "string" ? body.error : body.error.message;
  } catch (_) { /* not JSON */ }
  return "the server answered " + response.status;
}

function readRecord() {
  const record = {};
  for (const feature of model.features) {
    const input = $(feature.id);
    if (feature.kind === "numeric") {
      const text = input.value.trim();
      if (text === "" && input.validity.badInput) {
        showFieldError(feature.name, "not a number");
        record[feature.name] = NaN;
      } else {
        record[feature.name] = text === "" ? null : Number(text);
      }
    } else {
      record[feature.name] = input.value;
    }
  }
  return record;
}

function format(value) {
  return typeof value === "number" ? value.toLocaleString(undefined, { maximumFractionDigits: 4 }) : String(value);
}

function showResult(body) {
  const box = $("result");
  box.replaceChildren();
  const head = document.createElement("p");
  head.className = "prediction";
  head.append("Predicted " + model.target + ": ");
  const value = document.createElement("strong");
  value.id = "prediction-value";
  value.textContent = format(body.prediction);
  head.append(value);
  if (body.model_version) {
    // In a rollout either version may answer: say which one did.
    const version = document.createElement("small");
    version.id = "prediction-version";
    version.textContent = " (model version " + body.model_version + ")";
    head.append(version);
  }
  box.append(head);
  if (body.probabilities) {
    const list = document.createElement("ul");
    for (const [label, p] of Object.entries(body.probabilities)) {
      const item = document.createElement("li");
      item.textContent = label + ": " + (100 * p).toFixed(1) + "%";
      list.append(item);
    }
    box.append(list);
  }
  if (body.explanation) box.append(explanationChart(body));
  if (body.id) {
    const id = document.createElement("p");
    id.className = "hint";
    id.id = "prediction-id";
    id.textContent = "Prediction id " + body.id + ": send its true value to /feedback to measure live quality.";
    box.append(id);
  }
  for (const warning of body.warnings || []) {
    showFieldError(warning.field, "warning: " + warning.problem + " — " + warning.note);
  }
  box.hidden = false;
}

// One bar per input column, largest |contribution| first; base + the bars = the prediction.
// Classifiers: the predicted class's bars (a two-class booster explains its positive class).
function explanationChart(body) {
  const e = body.explanation;
  let contributions = e.contributions;
  let base = e.base;
  let about = "";
  if (typeof base !== "number") {
    const label = String(body.prediction) in base ? String(body.prediction) : Object.keys(base)[0];
    contributions = contributions[label];
    base = base[label];
    about = " for class " + label;
  }
  const figure = document.createElement("figure");
  figure.id = "explanation";
  const caption = document.createElement("figcaption");
  caption.textContent = "Why" + about + ": base " + format(base) + " plus each column's contribution (" +
    e.method + "; adds up in " + e.output_space + ")";
  figure.append(caption);
  const entries = Object.entries(contributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const largest = Math.max(...entries.map(([, v]) => Math.abs(v)), 1e-12);
  for (const [column, value] of entries) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.column = column;
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = column;
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = value < 0 ? "bar negative" : "bar";
    bar.style.width = (50 * Math.abs(value) / largest).toFixed(2) + "%";
    bar.style[value < 0 ? "right" : "left"] = "50%";
    track.append(bar);
    const number = document.createElement("span");
    number.className = "bar-value";
    number.textContent = (value < 0 ? "" : "+") + format(value);
    row.append(name, track, number);
    figure.append(row);
  }
  return figure;
}

$("predict-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  $("result").hidden = true;
  const record = readRecord();
  if (Object.values(record).some((v) => Number.isNaN(v))) return;
  let response;
  try {
    response = await fetch(model.explainable ? "/predict?explain=true" : "/predict", {
      method: "POST",
      headers: apiHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(record),
    });
  } catch (err) {
    $("form-error").textContent = "cannot reach the server: " + err.message;
    return;
  }
  if (response.ok) {
    showResult(await response.json());
    return;
  }
  const body = await response.clone().json().catch(() => null);
  const details = body && body.error && body.error.details;
  let placed = false;
  for (const detail of details || []) {
    const name = detail.loc[detail.loc.length - 1];
    placed = showFieldError(String(name), describe(detail)) || placed;
  }
  if (!placed) $("form-error").textContent = await errorText(response);
});

$("example-button").addEventListener("click", () => {
  clearErrors();
  if (!model.examples.length) return;
  const example = model.examples[nextExample % model.examples.length];
  nextExample += 1;
  for (const feature of model.features) {
    const value = example[feature.name];
    $(feature.id).value = value === null || value === undefined ? "" : String(value);
  }
});

// A small CSV reader for the preview (quoted fields, doubled quotes, CRLF).
function parseCsv(text, maxRows) {
  const rows = [];
  let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += c;
  }
  return rows;
}

function fillPreview(rows) {
  const table = $("csv-preview");
  table.replaceChildren();
  rows.forEach((cells, index) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement(index === 0 ? "th" : "td");
      td.textContent = cell;
      tr.append(td);
    }
    table.append(tr);
  });
}

let downloadUrl = null;

$("csv-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = $("csv-error");
  errorBox.replaceChildren();
  $("csv-result").hidden = true;
  const file = $("csv-file").files[0];
  if (!file) {
    errorBox.textContent = "choose a CSV file first";
    return;
  }
  const form = new FormData();
  form.append("file", file);
  $("csv-button").disabled = true;
  let response;
  try {
    response = await fetch("/predict/csv", { method: "POST", headers: apiHeaders({}), body: form });
  } catch (err) {
    errorBox.textContent = "cannot reach the server: " + err.message;
    $("csv-button").disabled = false;
    return;
  }
  $("csv-button").disabled = false;
  if (!response.ok) {
    const body = await response.clone().json().catch(() => null);
    const error = body && body.error;
    const head = document.createElement("p");
    head.textContent = error && error.message ? error.message : await errorText(response);
    errorBox.append(head);
    if (error && error.details) {
      const list = document.createElement("ul");
      for (const detail of error.details) {
        const item = document.createElement("li");
        item.textContent = detail.loc.filter((p) => p !== "file").join(", ") + ": " + describe(detail);
        list.append(item);
      }
      errorBox.append(list);
    }
    return;
  }
  const blob = await response.blob();
  const rows = parseCsv(await blob.slice(0, 256 * 1024).text(), 11);
  fillPreview(rows);
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(blob);
  const link = $("csv-download");
  link.href = downloadUrl;
  link.download = file.name.replace(/\.csv$/i, "") + "-predictions.csv";
  const total = response.headers.get("X-Modelship-Rows");
  const warnings = response.headers.get("X-Modelship-Warnings");
  $("csv-summary").textContent =
    "Predicted " + total + " rows; the first " + (rows.length - 1) + " are shown." +
    (warnings ? " Warnings: " + warnings : "");
  $("csv-result").hidden = false;
});

// Live quality per model version (GET /model/quality): live figures beside the card's.
async function showQuality() {
  let response;
  try {
    response = await fetch("/model/quality", { headers: apiHeaders({}) });
  } catch (err) {
    $("quality-state").textContent = "cannot reach the server: " + err.message;
    return;
  }
  if (!response.ok) {
    $("quality-state").textContent = await errorText(response);
    return;
  }
  const table = $("quality-table");
  table.replaceChildren();
  const states = [];
  for (const [version, judged] of Object.entries((await response.json()).model_versions)) {
    const names = Object.keys(judged.test || judged.live || {}).filter(
      (name) => typeof (judged.test || {})[name] === "number" || typeof (judged.live || {})[name] === "number"
    );
    const head = table.insertRow();
    for (const text of ["version " + version, ...names]) {
      const cell = document.createElement("th");
      cell.textContent = text;
      head.append(cell);
    }
    for (const source of ["live", "test"]) {
      const row = table.insertRow();
      row.dataset.source = source;
      const label = source === "live" ? "live (" + judged.labelled_rows + " labelled rows)" : source;
      row.insertCell().textContent = label;
      for (const name of names) {
        const value = (judged[source] || {})[name];
        row.insertCell().textContent = typeof value === "number" ? format(value) : "–";
      }
    }
    const said = {
      ok: "within " + judged.margin + " of the test " + judged.metric,
      below_test: judged.metric + " is below the test figure by more than " + judged.margin,
      insufficient_data: "fewer than " + judged.min_rows + " labelled rows: not judged yet",
    };
    states.push(version + ": " + said[judged.state]);
  }
  $("quality-state").textContent = states.join("; ");
}

$("quality-button").addEventListener("click", showQuality);
showQuality();
