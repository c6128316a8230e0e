"""What `modelship train` is asked to do: every option's default, check and flag, in one place.

The CLI builds its `train` flags from these fields (help text and default included) and hands
the values over as given; a value that does not pass raises a `TrainingError` naming the flag,
what is allowed and what was given. Importing this module is cheap (no scikit-learn), so the
CLI can build its parser from it for every command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from modelship.errors import TrainingError

if TYPE_CHECKING:
    from modelship.build.training.search import Limits

# The search's share of about a minute for the whole command on a 20,000-row, 26-class table
# on 2 cores: start-up, the winner's report and the write take most of the rest.
DEFAULT_TIME_BUDGET_SECONDS = 30.0
# The stacks' smallest default container is 512Mi with one worker: a worker of at most 320 MB
# leaves room for request bodies (up to 64 MB) and their parsed copies.
DEFAULT_MAX_SERVING_MB = 320.0
DEFAULT_MAX_MODEL_MB = 40.0


@dataclass(frozen=True)
class Flag:
    """How a field is spelled on the command line, and what it accepts (for errors and help)."""

    name: str
    help: str
    allowed: str
    metavar: str | None = None
    unit: str = ""  # printed after the default in --help


def _duration(value: object) -> object:
    """Seconds from `90`, `90s`, `1.5m` or `2min` (numbers pass through)."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min)?\s*", value)
    if not match:
        return value  # refused as not a number, with the flag's allowed text
    return float(match.group(1)) * (60 if match.group(2) in ("m", "min") else 1)


def _names(value: object) -> object:
    """Column names from `a,b` (lists pass through); an empty list is refused."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and not value:
        raise ValueError("no names")
    return value


def _known_model(value: str) -> str:
    if value == "auto":
        return value
    from modelship.build.training.models import MENU  # scikit-learn: only for a model by name

    if not any(value in menu for menu in MENU.values()):
        raise ValueError(value)
    return value


Names = Annotated[list[str], BeforeValidator(_names)]
# The menu's names in the search's order (training/models.py; a test keeps the two equal): the
# CLI's --help lists them without importing scikit-learn.
MENU_NAMES = (
    "regression: ridge, gradient_boosting, hist_gradient_boosting, lightgbm, xgboost, "
    "random_forest, extra_trees, lasso, elastic_net; classification: lda, logistic, lightgbm, "
    "extra_trees, hist_gradient_boosting, xgboost, random_forest, mlp, gradient_boosting"
)


class TrainOptions(BaseModel):
    """The options of one training run; the defaults are the command line's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Annotated[Path, Flag("--data", "training CSV", "a path to a CSV file")]
    target: Annotated[
        str, Flag("--target", "column to predict", "a column name"), Field(min_length=1)
    ]
    output: Annotated[Path, Flag("--output", "artifact directory", "a directory path")]
    task: Annotated[
        Literal["auto", "regression", "classification"],
        Flag(
            "--task",
            "what to learn: auto, regression or classification; auto infers it from the "
            "target and prints the decision",
            "one of auto, regression, classification",
        ),
    ] = "auto"
    model: Annotated[
        str,
        Flag(
            "--model",
            "auto (search the menu within --time-budget and keep the best model that fits "
            f"--max-model-mb/--max-serving-mb), or one model of the menu: {MENU_NAMES}",
            f"auto or one model of the menu ({MENU_NAMES})",
        ),
        AfterValidator(_known_model),
    ] = "auto"
    features: Annotated[
        Names | None,
        Flag("--features", "only these columns (comma-separated)", "comma-separated columns"),
    ] = None
    drop: Annotated[
        Names, Flag("--drop", "leave these columns out", "comma-separated column names")
    ] = Field(default_factory=list)
    numeric: Annotated[
        Names, Flag("--numeric", "treat these as numeric", "comma-separated column names")
    ] = Field(default_factory=list)
    categorical: Annotated[
        Names, Flag("--categorical", "treat these as categories", "comma-separated column names")
    ] = Field(default_factory=list)
    polynomial_degree: Annotated[
        int | None,
        Flag("--poly", "add polynomial features of numeric columns", "2, 3 or 4", "DEGREE"),
        Field(ge=2, le=4),
    ] = None
    test_size: Annotated[
        float,
        Flag("--test-size", "held-out fraction", "a fraction from 0.05 to 0.5"),
        Field(ge=0.05, le=0.5),
    ] = 0.2
    cv_folds: Annotated[
        int | None,
        Flag(
            "--cv",
            "cross-validation folds for --model auto (default: 5, or 3 on 10,000+ training rows)",
            "a whole number from 2 to 20",
            "FOLDS",
        ),
        Field(ge=2, le=20),
    ] = None
    seed: Annotated[
        int,
        Flag("--seed", "random seed", "a whole number from 0 to 4294967295"),
        Field(ge=0, le=2**32 - 1),
    ] = 42
    parity_tolerance: Annotated[
        float,
        Flag(
            "--parity-tolerance",
            "largest ONNX vs scikit-learn difference accepted (x target std for regression, "
            "absolute on probabilities for classification)",
            "a number of at least 0",
        ),
        Field(ge=0),
    ] = 1e-4
    name: Annotated[
        str | None,
        Flag("--name", "model name (default: <data file>-<target>)", "a name"),
        Field(min_length=1),
    ] = None
    time_budget_seconds: Annotated[
        float,
        Flag(
            "--time-budget",
            "time for the model search (screen, tuning, final fits), e.g. 60s, 90, 5m: no "
            "configuration starts that is estimated to end past it, and what was left is named",
            "a duration above 0 such as 60s, 90 or 5m",
            "DURATION",
            unit="s",
        ),
        BeforeValidator(_duration),
        Field(gt=0),
    ] = DEFAULT_TIME_BUDGET_SECONDS
    max_model_mb: Annotated[
        float,
        Flag(
            "--max-model-mb",
            "largest model.onnx the search may choose",
            "a number of MB above 0",
            "MB",
        ),
        Field(gt=0),
    ] = DEFAULT_MAX_MODEL_MB
    max_serving_mb: Annotated[
        float,
        Flag(
            "--max-serving-mb",
            "largest resident memory of one serving worker with the model loaded, as measured "
            "(the default fits the stacks' default 512Mi container with room for requests)",
            "a number of MB above 0",
            "MB",
        ),
        Field(gt=0),
    ] = DEFAULT_MAX_SERVING_MB

    @model_validator(mode="wrap")
    @classmethod
    def _explained(cls, values: Any, handler: Any) -> Any:
        """Every problem named by its flag, with what is allowed and what was given."""
        try:
            return handler(values)
        except ValidationError as exc:
            raise TrainingError("; ".join(_problem(error) for error in exc.errors())) from None

    @property
    def limits(self) -> Limits:
        from modelship.build.training.search import Limits

        return Limits(self.time_budget_seconds, self.max_model_mb, self.max_serving_mb)


# The fields the CLI offers as flags; data, target and output it spells itself (a remote CSV,
# the bundled data's target, a store root).
CLI_FIELDS = [f for f in TrainOptions.model_fields if f not in ("data", "target", "output")]


def flag_of(field: str) -> Flag:
    """The command-line spelling of a field."""
    return next(m for m in TrainOptions.model_fields[field].metadata if isinstance(m, Flag))


def _problem(error: Any) -> str:
    location = error.get("loc") or ()
    field = str(location[0]) if location else ""
    if field not in TrainOptions.model_fields:
        return f"{field or 'options'}: {error['msg']}"
    flag = flag_of(field)
    if error["type"] == "missing":
        return f"{flag.name} is required"
    return f"{flag.name} must be {flag.allowed}, got {error.get('input')!r}"
