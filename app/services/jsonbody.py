"""Request bodies parsed as JSON by hand (orjson), for the routes that check large tables of
pupils column by column instead of one pydantic object per pupil."""

from typing import Any

import orjson

from app.core.errors import InvalidInput


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON ({exc})", loc=["body"]) from None
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object", loc=["body"])
    return document
