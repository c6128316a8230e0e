"""The artifact directory: `model.onnx` (data, never code) and `model-card.json`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from modelship.contracts.card import ModelCard
from modelship.errors import ArtifactError

ONNX_FILE = "model.onnx"
CARD_FILE = "model-card.json"


@dataclass(frozen=True)
class Artifact:
    card: ModelCard
    onnx_bytes: bytes
    path: Path
    explanation: bytes | None = None  # the card's explanation file, checked against its sha256


def exists(path: Path) -> bool:
    return (path / CARD_FILE).is_file() and (path / ONNX_FILE).is_file()


def load(path: Path) -> Artifact:
    """Read an artifact and check that the ONNX file is the one its card describes."""
    if not path.is_dir():
        raise ArtifactError(f"no model artifact at {path}: the directory does not exist")
    card_path = path / CARD_FILE
    if not card_path.is_file():
        raise ArtifactError(f"no model artifact at {path}: {CARD_FILE} is missing")
    try:
        card = ModelCard.model_validate_json(card_path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArtifactError(
            f"{card_path} is not a valid model card: {where}: {first['msg']}"
        ) from exc
    onnx_path = path / card.artifact.onnx_file
    if not onnx_path.is_file():
        raise ArtifactError(f"model artifact {path} is incomplete: {onnx_path.name} is missing")
    onnx_bytes = onnx_path.read_bytes()
    actual = hashlib.sha256(onnx_bytes).hexdigest()
    if actual != card.artifact.onnx_sha256:
        raise ArtifactError(
            f"{onnx_path} does not match its model card: sha256 {actual[:12]}…, "
            f"card says {card.artifact.onnx_sha256[:12]}…"
        )
    return Artifact(
        card=card, onnx_bytes=onnx_bytes, path=path, explanation=_explanation(path, card)
    )


def _explanation(path: Path, card: ModelCard) -> bytes | None:
    files = card.explanation
    if files is None or files.file is None:
        return None
    file = path / files.file
    if not file.is_file():
        raise ArtifactError(f"model artifact {path} is incomplete: {files.file} is missing")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != files.sha256:
        raise ArtifactError(f"{file} does not match its model card (sha256 differs)")
    return data


def save(path: Path, card: ModelCard, onnx_bytes: bytes, explanation: bytes | None = None) -> None:
    """Write the model's files first and the card last, so a card always describes a complete
    model. `explanation` is the card's explanation file, when it is not in `path` already."""
    path.mkdir(parents=True, exist_ok=True)
    (path / card.artifact.onnx_file).write_bytes(onnx_bytes)
    if explanation is not None and card.explanation is not None and card.explanation.file:
        (path / card.explanation.file).write_bytes(explanation)
    tmp = path / f".{CARD_FILE}.tmp"
    tmp.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path / CARD_FILE)
