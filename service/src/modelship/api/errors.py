"""Every error leaves the service in one JSON shape: {"error": {status, type, message, details}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from modelship.api.responses import JSONBytes
from modelship.errors import ModelshipError, Problem

log = logging.getLogger("modelship")


def error_response(status: int, error_type: str, message: str, details: list[Problem]) -> Response:
    body: dict[str, object] = {"status": status, "type": error_type, "message": message}
    if details:
        body["details"] = [p.as_json() for p in details]
    return JSONBytes({"error": body}, status_code=status)


async def _modelship_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelshipError)
    return JSONBytes(exc.as_json(), status_code=exc.status_code)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [Problem(tuple(error["loc"]), str(error["msg"]).lower()) for error in exc.errors()]
    message = "; ".join(p.describe() for p in problems) or "invalid request"
    return error_response(422, "invalid_request", message, problems)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"no route {request.url.path}; see /docs for the API",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    response = error_response(exc.status_code, "http_error", message, [])
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the server log has details", [])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelshipError, _modelship_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
