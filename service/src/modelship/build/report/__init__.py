"""The training report: plots of how the model was chosen and how it does, in the artifact.

Made when a model is trained (or imported), with matplotlib, which only the `train` extra
installs: the server never imports this package, it serves the files written here.

    card = add_report(card, Evaluation(onnx_bytes, training=x_train, ...), artifact_dir, say)

(`add_report` is `build_report` then `write_report`; training and `modelship import` both use it.)
"""

from modelship.build.report.build import (
    REPORT_PAGE,
    Evaluation,
    add_report,
    build_report,
    served_model,
    write_report,
)
from modelship.build.report.page import PLOTS_DIR, Plot, Report

__all__ = [
    "PLOTS_DIR",
    "REPORT_PAGE",
    "Evaluation",
    "Plot",
    "Report",
    "add_report",
    "build_report",
    "served_model",
    "write_report",
]
