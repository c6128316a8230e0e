"""Reading a training CSV and deciding the task and each feature's kind."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelship.contracts.card import FeatureKind, Task
from modelship.errors import TrainingError
from modelship.model.codecs.base import MISSING_TOKENS

# A numeric target with at most this many distinct integer values is taken as class labels.
MAX_CLASSES_FOR_AUTO = 10
BUNDLED_DATA = Path(__file__).resolve().parents[2] / "data" / "insurance.csv"
BUNDLED_TARGET = "charges"


@dataclass(frozen=True)
class RawData:
    """The CSV exactly as text (every cell a string), plus what identifies the file."""

    frame: pd.DataFrame
    source: str
    sha256: str


def read_csv(path: Path) -> RawData:
    if not path.is_file():
        raise TrainingError(f"training data {path} does not exist or is not a file")
    content = path.read_bytes()
    if not content.strip():
        raise TrainingError(f"training data {path} is empty")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrainingError(
            f"training data {path} is not valid UTF-8 (byte offset {exc.start}): save it as UTF-8"
        ) from exc
    from io import StringIO

    try:
        frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise TrainingError(f"training data {path} cannot be parsed as CSV: {exc}") from exc
    if frame.empty:
        raise TrainingError(f"training data {path} has a header but no data rows")
    duplicated = [
        c for c in frame.columns if str(c).endswith(".1") and str(c)[:-2] in frame.columns
    ]
    if duplicated:
        raise TrainingError(f"training data {path} repeats the column(s) {duplicated}")
    return RawData(frame=frame, source=path.name, sha256=hashlib.sha256(content).hexdigest())


def parse_numeric(column: pd.Series) -> pd.Series:
    """Numbers as float64, missing tokens as NaN; raises ValueError if a cell is not a number."""
    cleaned = column.str.strip()
    missing = cleaned.isin(MISSING_TOKENS)
    numbers = pd.to_numeric(cleaned.where(~missing, None), errors="raise")
    return numbers.astype(np.float64)


def is_numeric(column: pd.Series) -> bool:
    try:
        numbers = parse_numeric(column)
    except (ValueError, TypeError):
        return False
    return bool(numbers.notna().any())


def infer_task(target: pd.Series) -> tuple[Task, str]:
    """Regression for continuous numbers, classification for text or few distinct integers."""
    if not is_numeric(target):
        return "classification", "the target holds text labels"
    numbers = parse_numeric(target).dropna()
    distinct = numbers.nunique()
    if bool((numbers == numbers.round()).all()) and distinct <= MAX_CLASSES_FOR_AUTO:
        return "classification", f"the target holds {distinct} distinct integer values"
    return "regression", f"the target is numeric with {distinct} distinct values"


def select_features(
    columns: list[str], target: str, features: list[str] | None, drop: list[str]
) -> list[str]:
    unknown = [c for c in [*(features or []), *drop] if c not in columns]
    if unknown:
        raise TrainingError(
            f"unknown column(s) {', '.join(unknown)}; the data has: {', '.join(columns)}"
        )
    if target in (features or []):
        raise TrainingError(f"the target column {target!r} cannot also be a feature")
    chosen = features if features else [c for c in columns if c != target]
    chosen = [c for c in chosen if c not in drop]
    if not chosen:
        raise TrainingError("no feature columns are left after --features/--drop")
    return chosen


def infer_kinds(
    frame: pd.DataFrame,
    features: list[str],
    numeric: list[str],
    categorical: list[str],
) -> dict[str, FeatureKind]:
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise TrainingError(
            f"column(s) {', '.join(both)} cannot be both --numeric and --categorical"
        )
    for name in [*numeric, *categorical]:
        if name not in features:
            raise TrainingError(f"--numeric/--categorical names {name!r}, which is not a feature")
    kinds: dict[str, FeatureKind] = {}
    for name in features:
        if name in categorical:
            kinds[name] = "categorical"
        elif name in numeric:
            if not is_numeric(frame[name]):
                bad = _first_non_number(frame[name])
                raise TrainingError(f"--numeric {name}: the column holds non-numbers, e.g. {bad!r}")
            kinds[name] = "numeric"
        else:
            kinds[name] = "numeric" if is_numeric(frame[name]) else "categorical"
    return kinds


def _first_non_number(column: pd.Series) -> str:
    for value in column:
        if value.strip() in MISSING_TOKENS:
            continue
        try:
            float(value)
        except ValueError:
            return str(value)
    return ""


def model_frame(frame: pd.DataFrame, kinds: dict[str, FeatureKind]) -> pd.DataFrame:
    """Features as the pipeline sees them: float64 (NaN if missing) or the exact category text."""
    out = pd.DataFrame(index=frame.index)
    for name, kind in kinds.items():
        out[name] = parse_numeric(frame[name]) if kind == "numeric" else frame[name].astype(object)
    return out
