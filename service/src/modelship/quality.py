"""Labels that arrive late: sent to a server (`modelship feedback`), or joined offline with the
rows the servers captured (`modelship quality`).

Offline, the join reads the labels first (id -> label; a file, or every CSV object under a store
prefix), then streams the captured objects (`captures/<model version>/<UTC date>/*.csv`, as
`modelship.serving.monitoring.capture` writes them) and keeps only the labelled rows: memory
grows with the labels, not with the captures. Metrics are computed by the code the server's
live quality uses (`modelship.serving.feedback.joined_metrics`), per model version and per day
the prediction was made.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelship.errors import ModelshipError
from modelship.model import store
from modelship.serving.feedback import (
    OUTCOMES,
    PREDICTION_ID,
    LabelRule,
    joined_metrics,
    labels_from_csv,
)
from modelship.serving.monitoring.capture import CAPTURES_PREFIX, MODEL_VERSION

SEND_ROWS = 5_000  # labels per POST: within the server's default MODELSHIP_MAX_BATCH_ROWS


# --- labels sent to a server -------------------------------------------------------------------
def send_labels(url: str, path: Path, api_key: str | None = None) -> dict[str, Any]:
    """POST an id,label CSV to `url`/feedback in parts; the reports added up."""
    items = labels_from_csv(path.read_bytes())
    total: dict[str, Any] = {"received": 0, **dict.fromkeys(OUTCOMES, 0), "problems": []}
    for start in range(0, len(items), SEND_ROWS):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["id", "label"])
        writer.writerows(items[start : start + SEND_ROWS])
        report = server_json(
            f"{url.rstrip('/')}/feedback", api_key, text.getvalue().encode(), "text/csv"
        )
        for key in ("received", *OUTCOMES):
            total[key] += report[key]
        for problem in report["problems"]:
            problem["index"] += start  # the row of the file, not of the part
            total["problems"].append(problem)
    return total


def server_json(
    url: str, api_key: str | None, data: bytes | None = None, media_type: str | None = None
) -> dict[str, Any]:
    """A running server's JSON answer to a GET (or, with `data`, a POST), sending the API key
    as the server takes it; an error answer or no answer is a `ModelshipError` saying which."""
    headers = {"content-type": media_type} if media_type else {}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    method = "GET" if data is None else "POST"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - the user's server
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
            report: dict[str, Any] = json.loads(answer.read())
            return report
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        error = ServerUnavailable if exc.code >= 500 else ModelshipError
        raise error(f"{url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerUnavailable(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


class ServerUnavailable(ModelshipError):
    """No answer, or a 5xx: worth asking again (a server restarting during a deploy)."""


# --- offline: captures joined with labels --------------------------------------------------------
@dataclass
class OfflineQuality:
    """The labels' outcomes, and per (model version, day) the joined rows."""

    labels: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    groups: dict[tuple[str, str], list[tuple[Any, Any, Any]]] = field(default_factory=dict)
    classes: dict[str, list[str] | None] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """Metrics per version: over all days, and per day."""
        versions: dict[str, Any] = {}
        for version in sorted({v for v, _ in self.groups}):
            days = sorted(day for v, day in self.groups if v == version)
            every = [row for day in days for row in self.groups[(version, day)]]
            classes = self.classes[version]
            versions[version] = {
                "labelled_rows": len(every),
                "metrics": joined_metrics(classes, every),
                "days": {
                    day: {
                        "labelled_rows": len(self.groups[(version, day)]),
                        "metrics": joined_metrics(classes, self.groups[(version, day)]),
                    }
                    for day in days
                },
            }
        return {"labels": self.labels, **self.counts, "model_versions": versions}


def offline_quality(captures_uri: str, labels_uri: str) -> OfflineQuality:
    """Join the labels (a CSV file, or every CSV under a store prefix) with the captures under
    the store `captures_uri` (the servers' MODELSHIP_CAPTURE_URI)."""
    result = OfflineQuality()
    labels: dict[str, Any] = {}
    for item_id, value in _label_items(labels_uri):
        result.labels += 1
        if not isinstance(item_id, str) or not item_id:
            result.counts["invalid"] += 1
        elif item_id in labels:
            result.counts["duplicate"] += 1
        else:
            labels[item_id] = value
    found: set[str] = set()
    for version, day, rows, rule, prediction_columns in _captured(captures_uri):
        result.classes[version] = rule.classes
        for row in rows:
            item_id = row[PREDICTION_ID]
            if item_id not in labels or item_id in found:
                continue  # unlabelled, or captured twice (a repeated request id): first counts
            found.add(item_id)
            label, problem = rule.parse(labels[item_id])
            if problem is not None:
                result.counts["invalid"] += 1
                continue
            result.counts["joined"] += 1
            result.groups.setdefault((version, day), []).append(
                _joined(label, row, prediction_columns, rule.classes)
            )
    result.counts["unknown"] = len(labels) - len(found)
    return result


def _joined(
    label: Any, row: dict[str, str], columns: list[str], classes: list[str] | None
) -> tuple[Any, Any, Any]:
    """(label, prediction, probabilities) as the live join stores them."""
    if classes is None:
        return label, float(row[columns[0]]), None
    probabilities = np.array([float(row[c]) for c in columns[1:]], dtype=np.float64)
    return label, row[columns[0]], probabilities.tobytes()


def _label_items(uri: str) -> Iterator[tuple[Any, Any]]:
    if store.is_store_uri(uri):
        location = store.parse(uri)
        backend = store.backend(location)
        with store.store_errors(location, "list", uri):
            keys = [k for k in backend.keys(location.key()) if k.endswith(".csv")]
        if not keys:
            raise ModelshipError(f"no CSV objects under {uri}")
        for key in keys:
            with store.store_errors(location, "read", location.uri_of(key)):
                yield from labels_from_csv(backend.read(key))
        return
    path = Path(uri)
    if not path.is_file():
        raise ModelshipError(f"labels file {uri} does not exist (or give s3://, gs://, file:///)")
    yield from labels_from_csv(path.read_bytes())


def _captured(
    uri: str,
) -> Iterator[tuple[str, str, list[dict[str, str]], LabelRule, list[str]]]:
    """Each captured object: (version, day, rows, the label rule, the prediction columns)."""
    location = store.parse(uri)
    backend = store.backend(location)
    prefix = location.key(CAPTURES_PREFIX) + "/"
    with store.store_errors(location, "list", uri):
        keys = sorted(k for k in backend.keys(prefix) if k.endswith(".csv"))
    if not keys:
        raise ModelshipError(
            f"no captures under {location.uri_of(prefix)}: is this the servers' "
            "MODELSHIP_CAPTURE_URI, and MODELSHIP_CAPTURE_RATE above 0?"
        )
    for key in keys:
        parts = key[len(prefix) :].split("/")
        if len(parts) != 3:  # <version>/<day>/<object>
            continue
        version, day, _ = parts
        with store.store_errors(location, "read", location.uri_of(key)):
            text = backend.read(key).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        if PREDICTION_ID not in header or MODEL_VERSION not in header:
            continue  # captured before rows carried their ids: nothing to join
        predicted = [c for c in header if c.startswith("predicted_")]
        if len(predicted) != 1:
            continue
        target = predicted[0].removeprefix("predicted_")
        probability_columns = [c for c in header if c.startswith("probability_")]
        classes = [c.removeprefix("probability_") for c in probability_columns] or None
        yield (
            version,
            day,
            list(reader),
            LabelRule(target, classes),
            [predicted[0], *probability_columns],
        )


def format_report(report: dict[str, Any]) -> str:
    """The report as a table: one line per version and day, then the version over all days."""
    lines = []
    for version, judged in report["model_versions"].items():
        for day, figures in [*judged["days"].items(), ("all days", judged)]:
            shown = "  ".join(
                f"{name} {value:.6g}"
                for name, value in figures["metrics"].items()
                if isinstance(value, float)
            )
            lines.append(f"{version}  {day:<10}  {figures['labelled_rows']:>8} rows  {shown}")
    counts = ", ".join(f"{report[o]} {o}" for o in OUTCOMES)
    lines.append(f"labels: {report['labels']} read: {counts}")
    return "\n".join(lines)
