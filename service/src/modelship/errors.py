"""One error root for everything a user can get wrong. Each wire protocol renders these in its
own shape at one place (`modelship.transport.http.errors`); the CLI prints the message."""

from __future__ import annotations

from dataclasses import dataclass, field

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, what, and what would have been accepted."""

    loc: Location
    problem: str
    allowed: str | None = None

    def describe(self) -> str:
        where = _describe_location(self.loc)
        text = f"{where}: {self.problem}" if where else self.problem
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


def _describe_location(loc: Location) -> str:
    parts: list[str] = []
    for item in loc:
        if item in ("body", "inputs", "query", "file", "path", "header"):
            continue
        if isinstance(item, int):
            parts.append(f"row {item}")
        elif item.startswith("line "):
            parts.append(item)
        else:
            parts.append(f"field '{item}'")
    return ", ".join(parts)


class ModelshipError(Exception):
    """Base of every error a user can cause. The HTTP layer renders it in the protocol's shape."""

    status_code = 400
    error_type = "bad_request"
    exit_code = 2  # CLI: 2 for bad input or arguments, 1 for failures of the tool itself
    headers: tuple[tuple[str, str], ...] = ()  # HTTP headers the answer carries (Retry-After)

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidInput(ModelshipError):
    """Values that are well-formed JSON/CSV but do not fit the model's feature schema."""

    status_code = 422
    error_type = "invalid_input"

    MAX_REPORTED = 50

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        first = problems[0].describe()
        more = (total or len(problems)) - 1
        message = first if more == 0 else f"{first} (and {more} more problem{'s' * (more > 1)})"
        super().__init__(message, problems[: self.MAX_REPORTED])


class MalformedBody(ModelshipError):
    """The body cannot be parsed at all (bad JSON, bad encoding, not a CSV)."""

    status_code = 400
    error_type = "malformed_body"


class BodyTooLarge(ModelshipError):
    status_code = 413
    error_type = "body_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"request body is larger than the limit of {limit_bytes} bytes "
            "(set MODELSHIP_MAX_BODY_BYTES to change it)"
        )

    @classmethod
    def batch(cls, rows: int, limit: int) -> BodyTooLarge:
        error = cls(limit)
        error.error_type = "batch_too_large"
        error.message = (
            f"the batch has {rows} records, more than the limit of {limit} "
            "(set MODELSHIP_MAX_BATCH_ROWS to change it, or use /predict/csv for large files)"
        )
        error.args = (error.message,)
        return error


class InvalidTensor(ModelshipError):
    """An Open Inference Protocol request whose tensors do not fit the model's inputs."""

    status_code = 400
    error_type = "invalid_tensor"


class NoExplanation(ModelshipError):
    """The loaded model has no exact explanation: the card says why (never an approximation)."""

    status_code = 409
    error_type = "no_explanation"


class Unauthorized(ModelshipError):
    status_code = 401
    error_type = "unauthorized"
    headers = (("WWW-Authenticate", 'Bearer realm="modelship"'),)


class Overloaded(ModelshipError):
    """The requests in flight would keep a new one waiting longer than this worker admits (or
    are at its hard bound): answered at once, so retrying elsewhere (or a moment later) is
    fast, and the load balancer and autoscaler see the pressure."""

    status_code = 503
    error_type = "overloaded"
    headers = (("Retry-After", "1"),)

    def __init__(self, wait_ms: float, limit: int) -> None:
        super().__init__(
            f"the server is overloaded: the requests in flight would keep this one waiting "
            f"longer than {wait_ms:g} ms (MODELSHIP_SHED_WAIT_MS), or this worker has its limit "
            f"of {limit} in flight (MODELSHIP_MAX_IN_FLIGHT); retry after 1 second"
        )


class TimedOut(ModelshipError):
    status_code = 503
    error_type = "timeout"
    headers = (("Retry-After", "1"),)

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request took longer than {seconds:g} s (MODELSHIP_REQUEST_TIMEOUT_SECONDS): "
            "send fewer rows per request"
        )


class UnsupportedMediaType(ModelshipError):
    status_code = 415
    error_type = "unsupported_media_type"


class NotFound(ModelshipError):
    status_code = 404
    error_type = "not_found"


class NotReady(ModelshipError):
    status_code = 503
    error_type = "not_ready"


class ArtifactError(ModelshipError):
    """A model artifact is missing, incomplete, or does not match its model card."""

    error_type = "artifact_error"
    status_code = 500
    exit_code = 2


class TrainingError(ModelshipError):
    """Training cannot go on with this data or these options."""

    error_type = "training_error"
    exit_code = 2


class ModelImportError(ModelshipError):
    """A model file cannot be imported: wrong format, unsupported, or not matching the sample."""

    error_type = "import_error"
    exit_code = 2


class ExportError(ModelshipError):
    """The fitted pipeline cannot be exported faithfully."""

    error_type = "export_error"
    exit_code = 1


@dataclass
class ProblemCollector:
    """Gathers problems while validating many values, so one response can name all of them."""

    problems: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, loc: Location, problem: str, allowed: str | None = None) -> None:
        self.total += 1
        if len(self.problems) < InvalidInput.MAX_REPORTED:
            self.problems.append(Problem(loc, problem, allowed))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidInput(self.problems, self.total)
