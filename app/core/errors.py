"""One exception hierarchy, one JSON shape for every error the service returns.

Shape: ``{"detail": "<a sentence>", "code": "<machine code>", "errors": [{"loc": [...],
"msg": "...", "type": "..."}]}``; ``errors`` names the offending fields (for a table,
``loc`` is ``["body", "students", <row index>, "<column>"]``).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The documented values of ``errors[].type`` for an invalid input (422). Other statuses
# give their ``code`` (not_found, conflict, payload_too_large, ...) as the type.
INPUT_ERROR_TYPES: Mapping[str, str] = {
    "missing": "a required field is absent",
    "unknown_field": "a field the API does not take; the message names the likely intended one",
    "wrong_type": "a value of the wrong JSON type (text for a number, a list for an object...)",
    "not_allowed": "a value outside the allowed choices",
    "out_of_range": "a number, a length or a count outside its bounds",
    "invalid_format": "text without the required form (a name, a UUID, a date)",
    "invalid_input": "any other rule of the input: the message says which",
}

# pydantic's error types, by the documented type they are reported as (a type not listed
# here is reported as invalid_input).
_PYDANTIC_TYPES: Mapping[str, str] = {
    "missing": "missing",
    "missing_argument": "missing",
    "extra_forbidden": "unknown_field",
    "unexpected_keyword_argument": "unknown_field",
    "literal_error": "not_allowed",
    "enum": "not_allowed",
    "string_pattern_mismatch": "invalid_format",
    "uuid_parsing": "invalid_format",
    "uuid_version": "invalid_format",
    "url_parsing": "invalid_format",
    "url_scheme": "invalid_format",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "multiple_of": "out_of_range",
    "too_short": "out_of_range",
    "too_long": "out_of_range",
}
_PYDANTIC_SUFFIXES: Sequence[tuple[str, str]] = (
    ("_type", "wrong_type"),
    ("_parsing", "wrong_type"),
    ("_too_short", "out_of_range"),
    ("_too_long", "out_of_range"),
)


def input_error_type(pydantic_type: str) -> str:
    """The documented ``errors[].type`` of one of pydantic's error types."""
    if pydantic_type in INPUT_ERROR_TYPES:
        return pydantic_type
    if pydantic_type in _PYDANTIC_TYPES:
        return _PYDANTIC_TYPES[pydantic_type]
    for suffix, kind in _PYDANTIC_SUFFIXES:
        if pydantic_type.endswith(suffix):
            return kind
    return "invalid_input"


def input_errors(
    errors: Iterable[Mapping[str, Any]], prefix: Sequence[str | int] = ()
) -> list[dict[str, Any]]:
    """pydantic's errors as ``errors[]``: ``loc`` under ``prefix``, the documented type, the
    message without the value (it may be a pupil's grade). Unknown fields come first: a
    misspelt field also shows up as a missing one, and its suggestion is the useful line."""
    items = [
        {
            "loc": [*prefix, *error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": input_error_type(str(error.get("type", ""))),
        }
        for error in errors
    ]
    return sorted(items, key=lambda item: item["type"] != "unknown_field")


def error_body(
    detail: str, code: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The one JSON shape of every error answer."""
    return {"detail": detail, "code": code, "errors": errors or []}


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        loc: Sequence[str | int] | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if errors is None and loc is not None:
            errors = [{"loc": list(loc), "msg": detail, "type": type or self.code}]
        self.errors = errors or []
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.detail, self.code, self.errors)


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_input"


class QuotaExceeded(ServiceError):
    """The organisation holds as much as its quota allows: delete something first."""

    status_code = 409
    code = "quota_exceeded"


class TooManyRequests(ServiceError):
    """A rate limit or a quota that frees itself with time: retry after ``Retry-After``."""

    status_code = 429
    code = "rate_limited"


class QuotaExceededRetryLater(TooManyRequests):
    """A quota that frees itself (queued jobs end): 429, not 409."""

    code = "quota_exceeded"


class InternalError(ServiceError):
    """A bug: the answer says only where the operators can find it."""

    status_code = 500
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__(
            "internal error; the operators can find it in the logs by the X-Request-ID"
        )


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "unavailable"

    def __init__(self, detail: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})
