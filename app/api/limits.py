"""Refuse request bodies over the configured size while they stream in.

Pure ASGI so nothing is buffered: a declared Content-Length over the limit is refused
before any byte is read; a chunked body is counted as it arrives and refused as soon
as it passes the limit.
"""

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so that FastAPI's body parsing lets it
    through to the error handler instead of turning it into a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=_too_large_message(max_bytes))


def _too_large_message(max_bytes: int) -> str:
    return (
        f"the request body is larger than the limit of {max_bytes} bytes (GRADECAST_MAX_BODY_BYTES)"
    )


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
                if declared >= 0:
                    # The server reads exactly the declared bytes: nothing left to count.
                    await self.app(scope, receive, send)
                    return
                break

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = PayloadTooLarge(_too_large_message(self.max_bytes), loc=["body"])
        body = orjson.dumps(error.body())
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
