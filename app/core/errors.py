"""One exception hierarchy, one JSON shape for every error the service returns.

Shape: ``{"detail": "<a sentence>", "code": "<machine code>", "errors": [{"loc": [...],
"msg": "...", "type": "..."}]}``; ``errors`` names the offending fields (for a table,
``loc`` is ``["body", "students", <row index>, "<column>"]``).
"""

from collections.abc import Sequence
from typing import Any


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
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if errors is None and loc is not None:
            errors = [{"loc": list(loc), "msg": detail, "type": self.code}]
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
