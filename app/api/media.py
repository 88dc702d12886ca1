"""Content negotiation shared by the routes that take JSON or CSV."""

from fastapi import Request

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "text/tab-separated-values"})


def media_type(request: Request) -> tuple[str, str | None]:
    """The request's media type (lowercase) and its ``charset`` parameter, if any."""
    media, _, params = request.headers.get("content-type", "").partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip().strip('"')
    return media.strip().lower(), charset
