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


async def read_body(request: Request) -> bytes | bytearray:
    """The whole body. With a declared length it is read into one buffer of that size, as it
    comes: Starlette's `body()` keeps every piece, then joins them, twice the body at its
    peak (a 31-MB national cohort held 62 MB, and the pieces' memory stayed with the
    process). A body already read (say, for its Idempotency-Key fingerprint) is returned
    as it was read."""
    declared = request.headers.get("content-length", "")
    chunks = request.stream()
    first = b""
    async for chunk in chunks:
        if chunk:
            first = chunk
            break
    if not declared.isdigit() or len(first) >= int(declared):
        rest = [chunk async for chunk in chunks]
        return first + b"".join(rest) if rest else first
    body = bytearray(int(declared))
    body[: len(first)] = first
    at = len(first)
    async for chunk in chunks:
        body[at : at + len(chunk)] = chunk  # past the declared length, it grows
        at += len(chunk)
    del body[at:]  # shorter than declared: what came
    return body
