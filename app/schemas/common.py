"""Schemas shared by every resource."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.tables import API_NAME_PATTERN, ID_NAME


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# A model's name, in URLs and in bodies alike.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"
MODEL_NAME_DESCRIPTION = "Letters, digits, '.', '_' and '-' (not starting with '.')"

# What the services accept as a column's API name, told to the schema (the services, not
# pydantic, check it, so that the error can suggest the right spelling).
API_NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": API_NAME_PATTERN.replace("^", f"^(?!{ID_NAME}$)", 1),
}

# Free text that is stored: no control characters (PostgreSQL refuses NUL in text, which
# was a 500; the others have no place in a name, a label or a reason).
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(examples=[["body", "students", 2, "maths"]])
    msg: str = Field(examples=["21 is outside the grade range [0, 20]"])
    type: str = Field(examples=["invalid_input"])


class ErrorResponse(BaseModel):
    detail: str = Field(examples=["row 3, column 'maths': 21 is outside the grade range [0, 20]"])
    code: str = Field(examples=["invalid_input"])
    errors: list[ErrorItem] = Field(default_factory=list)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can return."""
    descriptions = {
        400: "Bad request",
        401: "Missing, unknown or revoked API key",
        403: "The key's role is not enough",
        404: "Not found (or belongs to another organisation)",
        409: "Conflict with the current state",
        413: "Body or table too large",
        415: "Unsupported content type",
        422: "Invalid input; `errors[].loc` names the field",
        429: "Over a rate limit or the organisation's queued-jobs quota; see `Retry-After`",
        503: "Database unavailable; retry",
    }
    if 401 in statuses and 429 not in statuses:
        statuses = (*statuses, 429)  # every keyed route has a rate limit
    responses: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses
    }
    if 429 in responses:
        responses[429]["headers"] = _RATE_LIMIT_HEADERS
    return responses


_RATE_LIMIT_HEADERS: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
    "RateLimit-Policy": {
        "description": 'The limit that was hit (IETF draft): `"requests";q=600;w=60`',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of it (IETF draft): `"requests";r=0;t=5`',
        "schema": {"type": "string"},
    },
}
