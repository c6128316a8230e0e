"""Every error leaves the service here, in the shape of the protocol the request used.

Native routes: `ErrorResponse` (`{"error": {status, type, message, details}}`), built from the
pydantic model that also documents it in OpenAPI. V2 routes (`/v2/...`): the Open Inference
Protocol's `{"error": "<message>"}`. Middleware answers (401, 413, 503) come through here too.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import Scope

from modelship.contracts.v2 import ErrorResponse as V2ErrorResponse
from modelship.errors import ModelshipError, Problem
from modelship.transport.http.schemas import ErrorDetail, ErrorInfo, ErrorResponse

log = logging.getLogger("modelship")
V2_PREFIX = "/v2"


def is_v2(path: str) -> bool:
    return path == V2_PREFIX or path.startswith("/v2/")


def native_body(status: int, error_type: str, message: str, problems: list[Problem]) -> bytes:
    """The one builder of the native error body."""
    details = [ErrorDetail(loc=list(p.loc), problem=p.problem, allowed=p.allowed) for p in problems]
    info = ErrorInfo(status=status, type=error_type, message=message, details=details or None)
    return ErrorResponse(error=info).model_dump_json(exclude_none=True).encode()


def v2_body(message: str) -> bytes:
    """The one builder of the V2 error body."""
    return V2ErrorResponse(error=message).model_dump_json().encode()


def render(path: str, exc: ModelshipError) -> Response:
    """The answer to an error, in the shape of the protocol of `path`."""
    if is_v2(path):
        # The protocol has one error status for bad requests: 400 (we use 422 natively).
        status = 400 if exc.status_code == 422 else exc.status_code
        body = v2_body(exc.message)
    else:
        status = exc.status_code
        body = native_body(status, exc.error_type, exc.message, exc.problems)
    return Response(body, status, dict(exc.headers), media_type="application/json")


class _Foreign(ModelshipError):
    """A framework error (routing, path parameters) carried to `render`."""

    def __init__(self, status: int, error_type: str, message: str, problems: list[Problem]) -> None:
        super().__init__(message, problems)
        self.status_code = status
        self.error_type = error_type


async def _modelship_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelshipError)
    return render(request.url.path, exc)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [Problem(tuple(error["loc"]), str(error["msg"]).lower()) for error in exc.errors()]
    message = "; ".join(p.describe() for p in problems) or "invalid request"
    return render(request.url.path, _Foreign(422, "invalid_request", message, problems))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"no route {request.url.path}; see /docs for the API",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    response = render(request.url.path, _Foreign(exc.status_code, "http_error", message, []))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected(request.scope)


def unexpected(scope: Scope) -> Response:
    """The 500 of an error nobody expected, logged with its traceback (call it in `except`)."""
    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
    error = _Foreign(500, "internal_error", "internal error; the server log has details", [])
    return render(scope["path"], error)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelshipError, _modelship_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
