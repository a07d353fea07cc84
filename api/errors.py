"""The one error envelope every 4xx and 5xx response carries, and the handlers that build it.

Every failure goes through `error_response`, so a client parses one shape:
`{"error": {"status": 400, "code": "bad_parameter", "message": "...", "details": [...]}}`.
`tests/api/test_errors.py` walks every route with bad parameters to keep it that way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorBody, ErrorDetail, ErrorResponse
from midika.errors import BadQuery, MidikaError, NotFound, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_S = "5"

STORE_UNAVAILABLE = "the data store cannot be reached right now; try again shortly"
INTERNAL_ERROR = "internal server error; the server log has the details"

# Checked in order, so a subclass listed before its base wins. A 5xx gets a fixed message: the
# exception's own can name files, hosts and queries, so it goes to the log only.
_MIDIKA_ERRORS: tuple[tuple[type[MidikaError], int, str, str | None], ...] = (
    (NotFound, 404, "not_found", None),
    (BadQuery, 400, "bad_parameter", None),
    (StoreUnavailable, 503, "store_unavailable", STORE_UNAVAILABLE),
    (StoreError, 500, "store_error", INTERNAL_ERROR),
)


class ApiError(Exception):
    """A failure the API reports as it is: raise it from routes and dependencies."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[ErrorDetail] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = dict(headers or {})


def bad_parameter(parameter: str, message: str, *, allowed: list[str] | None = None) -> ApiError:
    """A 400 for one query parameter; `message` says what is wrong and how to fix it."""
    full = f"query parameter '{parameter}': {message}"
    detail = ErrorDetail(location="query", parameter=parameter, message=message, allowed=allowed)
    return ApiError(400, "bad_parameter", full, details=[detail])


def error_responses(*statuses: int, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the error envelope for `statuses` (and 401/403 with `auth`)."""
    documented: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": HTTPStatus(status).phrase} for status in statuses
    }
    # Every route but /health needs a key; its role table is api.auth.ROUTE_ROLES.
    for status in (401, 403) if auth else ():
        documented.setdefault(status, {"model": ErrorResponse, "description": HTTPStatus(status).phrase})
    # "default" also stops FastAPI from documenting its 422 shape, which this API never sends.
    documented["default"] = {"model": ErrorResponse, "description": "Any other error, same envelope"}
    return documented


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The only place an error body is built."""
    if status == 503:
        # Every 503 is a store or dependency that may come back: tell clients when to ask again.
        headers = {"Retry-After": RETRY_AFTER_S, **(headers or {})}
    body = ErrorResponse(error=ErrorBody(status=status, code=code, message=message, details=details or []))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception the app can raise to `error_response`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(MidikaError, _midika_error)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [_describe(err) for err in exc.errors()]
    message = "; ".join(
        f"{d.location} parameter '{d.parameter}': {d.message}" if d.parameter else d.message for d in details
    )
    return error_response(400, "bad_parameter", message or "invalid request", details=details)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"no route {request.url.path}; the API is under /api/v1, documented at /docs"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for its methods"
    else:
        message = str(exc.detail) or HTTPStatus(status).phrase
    code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    return error_response(status, code, message, headers=exc.headers)


async def _midika_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MidikaError)
    for kind, status, code, public_message in _MIDIKA_ERRORS:
        if isinstance(exc, kind):
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
            return error_response(status, code, public_message or str(exc))
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s raised", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", INTERNAL_ERROR)


# How pydantic's error types read as "what was expected", keyed by pydantic's `type`.
_EXPECTED = {
    "missing": "is required",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "bool_parsing": "expected true or false",
    "string_type": "expected a single text value",
    "list_type": "expected a list",
}


def _describe(err: Any) -> ErrorDetail:
    """Turn one pydantic error into a detail naming the parameter and what it should be."""
    loc = [str(part) for part in err.get("loc", ())]
    location = loc[0] if loc else None
    # ("query", "device", 1) is the second `device`: the client knows it by name, not by position.
    parameter = loc[1] if len(loc) > 1 else None
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind in _EXPECTED:
        message = _EXPECTED[kind]
    elif kind == "value_error" and "error" in ctx:
        message = str(ctx["error"])
    elif kind == "less_than_equal":
        message = f"must be at most {ctx.get('le')}"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx.get('ge')}"
    elif kind == "greater_than":
        message = f"must be above {ctx.get('gt')}"
    elif kind in ("enum", "literal_error"):
        message = f"expected one of {ctx.get('expected', 'the documented values')}"
    else:
        message = str(err.get("msg", "invalid value"))
    if kind != "missing" and isinstance(err.get("input"), str):
        message += f"; got {_shorten(err['input'])!r}"
    return ErrorDetail(location=location, parameter=parameter, message=message)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
