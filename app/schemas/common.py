"""Schemas shared by every resource."""

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.core.errors import INPUT_ERROR_TYPES
from app.tables import API_NAME_PATTERN, ID_NAME, unknown_name_message


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped, and the error
    names the field the client most likely meant."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _name_unknown_fields(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            fields = [info.alias or name for name, info in cls.model_fields.items()]
            errors: list[InitErrorDetails] = []
            for error in exc.errors():
                if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
                    message = unknown_name_message("field", str(error["loc"][0]), fields)
                    kind = PydanticCustomError("unknown_field", message.replace("{", "{{"))
                    errors.append({"type": kind, "loc": error["loc"], "input": error["input"]})
                else:
                    errors.append(_as_details(error))
            raise ValidationError.from_exception_data(exc.title, errors) from None


def _as_details(error: Any) -> InitErrorDetails:
    """A reported error as pydantic takes it back, message and context kept."""
    kind = PydanticCustomError(error["type"], error["msg"].replace("{", "{{"))
    return {"type": kind, "loc": error["loc"], "input": error["input"]}


# A pupil's cell in a JSON body. The table reader, not pydantic, checks it (one rule for
# JSON and CSV, and one error per cell, at the cell).
GradeCell = Annotated[
    Any,
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
        mode="validation",
    ),
]


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
    type: str = Field(
        examples=["out_of_range"],
        description="For a 422, one of: "
        + "; ".join(f"`{name}` ({meaning})" for name, meaning in INPUT_ERROR_TYPES.items())
        + ". For another status, its `code`.",
    )


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
