"""Model files: which format a file is (by its extension, confirmed by its content) and loading it.

Loading is where trust matters: skops loads only the types it (or the user) trusts, a pickle is
unpickled only with `--trust-pickle`, boosters and ONNX files are read as data.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelship.errors import ModelImportError

Format = Literal[
    "skops", "joblib", "pickle", "xgboost-json", "xgboost-ubj", "lightgbm-text", "onnx"
]

# What `--format` accepts, and the formats each name may turn out to be.
FORMAT_CHOICES: dict[str, tuple[Format, ...]] = {
    "skops": ("skops",),
    "joblib": ("joblib",),
    "pickle": ("pickle",),
    "xgboost": ("xgboost-json", "xgboost-ubj"),
    "lightgbm": ("lightgbm-text",),
    "onnx": ("onnx",),
}
EXTENSIONS: dict[str, Format] = {
    ".skops": "skops",
    ".joblib": "joblib",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".json": "xgboost-json",
    ".ubj": "xgboost-ubj",
    ".txt": "lightgbm-text",
    ".onnx": "onnx",
}
DESCRIPTIONS: dict[Format, str] = {
    "skops": "a skops file",
    "joblib": "a joblib file",
    "pickle": "a pickle file",
    "xgboost-json": "an XGBoost JSON model",
    "xgboost-ubj": "an XGBoost UBJSON model",
    "lightgbm-text": "a LightGBM text model",
    "onnx": "an ONNX model",
}
PICKLE_FORMATS: tuple[Format, ...] = ("joblib", "pickle")
# Types trusted without being named: skops asks about them for nearly every pipeline (an encoder's
# `dtype=np.float64`), and loading one only builds a numpy data type, it calls nothing else.
ALWAYS_TRUSTED = ("numpy.dtype",)
# joblib writes plain pickles, or compressed ones (zlib, gzip, bz2, xz, lzma, lz4).
_JOBLIB_MAGIC = (
    b"\x80",
    b"\x78",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"\x04\x22M\x18",
)


@dataclass(frozen=True)
class Source:
    path: Path
    data: bytes
    format: Format

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _is_skops(data: bytes) -> bool:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return False
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return "schema.json" in archive.namelist()


def _is_xgboost_json(data: bytes) -> bool:
    if data.lstrip()[:1] != b"{":
        return False
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and "learner" in document


def _is_onnx(data: bytes) -> bool:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError):
        return False
    # Random bytes can decode as an empty protobuf message: a model has an IR version and nodes.
    return model.ir_version > 0 and len(model.graph.node) > 0


SNIFFERS: dict[Format, Callable[[bytes], bool]] = {
    "skops": _is_skops,
    "joblib": lambda data: data.startswith(_JOBLIB_MAGIC),
    "pickle": lambda data: data.startswith(b"\x80"),
    "xgboost-json": _is_xgboost_json,
    "xgboost-ubj": lambda data: data.startswith(b"{") and b"learner" in data[:256],
    "lightgbm-text": lambda data: data.startswith(b"tree\n") and b"\nversion=" in data[:200],
    "onnx": _is_onnx,
}


def read_source(path: Path, format_name: str | None) -> Source:
    """Read a model file and decide its format; refuse a file whose content is not that format."""
    if not path.is_file():
        raise ModelImportError(f"model file {path} does not exist or is not a file")
    if format_name is None:
        claimed = EXTENSIONS.get(path.suffix.lower())
        if claimed is None:
            raise ModelImportError(
                f"cannot tell the format of {path.name} from its extension; use one of "
                f"{', '.join(EXTENSIONS)} or pass --format ({', '.join(FORMAT_CHOICES)})"
            )
        candidates: tuple[Format, ...] = (claimed,)
        told = f"its extension {path.suffix!r} says"
    else:
        candidates = FORMAT_CHOICES[format_name]
        told = f"--format {format_name} says"
    data = path.read_bytes()
    for candidate in candidates:
        if SNIFFERS[candidate](data):
            return Source(path=path, data=data, format=candidate)
    looks = next((f for f in SNIFFERS if f not in candidates and SNIFFERS[f](data)), None)
    hint = f"; it looks like {DESCRIPTIONS[looks]}" if looks else ""
    raise ModelImportError(
        f"{path.name} is not {DESCRIPTIONS[candidates[0]]} as {told}{hint}"
        + (" (pass --format to say what it is)" if looks else "")
    )


def load_sklearn(source: Source, trust_pickle: bool, trusted_types: list[str]) -> Any:
    """The estimator in a skops file, or in a pickle/joblib file when the user trusts it."""
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        if source.format == "skops":
            estimator = _load_skops(source, trusted_types)
        else:
            if not trust_pickle:
                raise ModelImportError(
                    f"{source.path.name} is a {source.format} file: loading it runs whatever "
                    "code its author put in it; if you trust the file, pass --trust-pickle (it "
                    "is unpickled only in this import, never by the server), or save the model "
                    "with skops instead"
                )
            estimator = _unpickle(source)
    mismatch = [w.message for w in caught if isinstance(w.message, InconsistentVersionWarning)]
    if mismatch:
        first = mismatch[0]
        raise ModelImportError(
            f"{source.path.name} was saved with scikit-learn {first.original_sklearn_version} "
            f"but {sklearn.__version__} is installed ({first.estimator_name} may behave "
            f"differently): import it with scikit-learn {first.original_sklearn_version}, "
            f"or load and save it again with {sklearn.__version__}"
        )
    if not hasattr(estimator, "predict"):
        raise ModelImportError(
            f"{source.path.name} holds a {type(estimator).__name__}, not a scikit-learn "
            "estimator or pipeline with predict()"
        )
    return estimator


def _load_skops(source: Source, trusted_types: list[str]) -> Any:
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=source.data)
    refused = [name for name in untrusted if name not in (*trusted_types, *ALWAYS_TRUSTED)]
    if refused:
        raise ModelImportError(
            f"{source.path.name} contains types skops does not trust by default: "
            f"{', '.join(refused)}; if you trust the file's author, pass "
            f"--trust {','.join(refused)}"
        )
    try:
        return skops.io.loads(source.data, trusted=untrusted)
    except Exception as exc:  # skops raises many types for a damaged or foreign file
        raise ModelImportError(
            f"{source.path.name} cannot be loaded by skops: {type(exc).__name__}: {exc}"
        ) from exc


def _unpickle(source: Source) -> Any:
    import joblib

    try:
        # The user passed --trust-pickle: this is the one place that unpickles, by design.
        return joblib.load(io.BytesIO(source.data))
    except Exception as exc:  # unpickling raises whatever the file's code raises
        raise ModelImportError(
            f"{source.path.name} cannot be unpickled: {type(exc).__name__}: {exc}"
        ) from exc
