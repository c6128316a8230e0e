"""modelship: train a scikit-learn model from any CSV, export it to ONNX, and serve it over HTTP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modelship")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
