"""The one table from error class to HTTP status and Heroku error id, and the JSON error body."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dockyard.errors import (
    AccessDeniedError,
    ConflictError,
    DockyardError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
)

# Most specific first: the first matching class wins.
ERROR_TABLE: tuple[tuple[type[DockyardError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InvalidError, 422, "invalid_params"),
    (UnauthorizedError, 401, "unauthorized"),
    (AccessDeniedError, 403, "forbidden"),
    (RateLimitedError, 429, "rate_limit"),
    (UnavailableError, 503, "service_unavailable"),
)


def error_response(
    status: int, error_id: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"id": error_id, "message": message}, status_code=status, headers=headers)


def status_for(error: DockyardError) -> tuple[int, str]:
    for cls, status, error_id in ERROR_TABLE:
        if isinstance(error, cls):
            return status, error_id
    return 422, "invalid_params"


async def handle_dockyard_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, DockyardError):
        return await handle_unexpected(request, exc)
    status, error_id = status_for(exc)
    headers = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
        headers["RateLimit-Remaining"] = "0"
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = 'Bearer realm="Dockyard"'
    return error_response(status, error_id, exc.message, headers)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        return await handle_unexpected(request, exc)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "bad_request", "The request body is not valid JSON.")
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    return error_response(422, "invalid_params", "Invalid parameters: " + "; ".join(parts))


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return await handle_unexpected(request, exc)
    if exc.status_code == 404:
        return error_response(
            404,
            "not_found",
            "The requested API endpoint was not found. Are you using "
            "the right HTTP verb (i.e. GET vs. POST), and did you specify your intended "
            "version with the Accept header?",
        )
    if exc.status_code == 405:
        return error_response(
            405, "method_not_allowed", "This endpoint does not support that HTTP method."
        )
    return error_response(exc.status_code, "bad_request", str(exc.detail))


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    import logging

    logging.getLogger("dockyard.api").exception(
        "unhandled error on %s %s", request.method, request.url.path
    )
    return error_response(500, "internal_server_error", "Internal server error.")
