"""Exception handlers: every error leaves the service in the one JSON shape."""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from app.api.ratelimit import REFUSAL_DELAY_SECONDS
from app.core.errors import (
    InvalidInput,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
    error_body,
    input_errors,
)
from app.engine import DegenerateDataError, InvalidConfigError
from app.tables import TableError, csv_error

logger = logging.getLogger("gradecast.errors")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def _response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else "request"


async def service_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, TooManyRequests):
        # Slows a client that retries in a loop to one try per connection a second.
        await asyncio.sleep(REFUSAL_DELAY_SECONDS)
    return _response(exc.status_code, exc.body(), exc.headers)


def as_service_error(exc: Exception) -> ServiceError:
    """The one translation of the typed errors of the layers below into an HTTP answer."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, TableError):
        return csv_error(exc)
    if isinstance(exc, InvalidConfigError):
        # The engine names its option as the API does (TrainingParameters).
        return InvalidInput(str(exc), loc=["body", exc.parameter])
    if isinstance(exc, DegenerateDataError):
        return InvalidInput(str(exc), loc=["body", exc.parameter] if exc.parameter else ["body"])
    raise TypeError(f"no HTTP translation for {type(exc).__name__}")


async def typed_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return await service_error_handler(request, as_service_error(exc))


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never echo the submitted value: it may be a pupil's grade.
    errors = input_errors(exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    detail = f"{_describe(first['loc'])}: {first['msg']}"
    return _response(422, error_body(detail, "invalid_input", errors))


def _allowed_methods(request: Request) -> str:
    """Every method of every route at this path: Starlette's 405 names only the first
    route that matched the path, so ``GET /api-keys`` was missing from ``OPTIONS /api-keys``."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match is not Match.NONE and isinstance(route, Route) and route.methods:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    if status == 400:
        # Only FastAPI's and Starlette's body parsing raise a bare 400 (undecodable JSON,
        # broken multipart); like malformed JSON, it is invalid input: 422 naming the body.
        status = 422
    if status == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    code = _HTTP_CODES.get(status, "error")
    loc = ["body"] if status in (413, 422) else []
    errors = [{"loc": loc, "msg": detail, "type": code}] if loc else []
    return _response(status, error_body(detail, code, errors), headers)


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # Connection-level failures (server down, SQLite file locked too long) are transient.
    assert isinstance(exc, DBAPIError)
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        logger.warning(
            "database unavailable",
            extra={"path": request.url.path, "error": type(exc.orig).__name__},
        )
        error = ServiceUnavailable()
        return _response(error.status_code, error.body(), error.headers)
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_handler)
    for typed in (TableError, InvalidConfigError, DegenerateDataError):
        app.add_exception_handler(typed, typed_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
