"""Per-request observability: a request id, one access log line, request metrics.

Pure ASGI and cheap, since it wraps /predict: no body is read and nothing is buffered.
The access line holds the method, the route *template* (``/cohorts/{cohort_id}``), the
status, the duration, the request id and the caller's organisation: never the raw path,
the query string, a body or a header, which could carry pupils' names, grades or keys.
"""

import logging
import os
import re
import threading
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import InternalError
from app.core.logging import direct_lines, request_id
from app.core.metrics import ServiceMetrics

access_logger = logging.getLogger("gradecast.access")
logger = logging.getLogger("gradecast.errors")

_ERROR_BODY = orjson.dumps(InternalError().body())
_ERROR_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_ERROR_BODY)).encode()),
]

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept only if it cannot smuggle anything into the logs.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "(unmatched)"


class RandomIds:
    """32 random hex digits an id, as uuid4().hex, without a system call each: the bytes
    are os.urandom's, read 4 KiB (256 ids) at a time (a getrandom call each cost about
    2 µs of a request). A forked child reads afresh: it never repeats its parent's ids."""

    def __init__(self, batch_bytes: int = 4096) -> None:
        self._batch_bytes = batch_bytes
        self._lock = threading.Lock()  # an app may be called from several threads' loops
        self._random = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def new(self) -> str:
        with self._lock:
            at = self._at
            if at + 16 > len(self._random):
                self._random = os.urandom(self._batch_bytes)
                at = 0
            self._at = at + 16
            return self._random[at : at + 16].hex()

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._random = b""
        self._at = 0


_new_request_id = RandomIds().new


def _incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _SANE_REQUEST_ID.fullmatch(value) else None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template; the router leaves the route in the scope."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


def _organisation_id(scope: Scope) -> str | None:
    # ``request.state`` is a view of ``scope["state"]``; the auth dependency sets the principal.
    state: Any = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    label: str | None = getattr(principal, "organisation_label", None)
    return label


def _write_access_line(extra: dict[str, Any]) -> None:
    lines = direct_lines(access_logger, logging.INFO)
    if lines is not None:  # logging as configure_logging left it: no LogRecord needed
        lines.write_fields(access_logger.name, logging.INFO, "request", extra)
        return
    # makeRecord + handle: logger.info would also walk the stack for the caller.
    record = access_logger.makeRecord(
        access_logger.name, logging.INFO, __file__, 0, "request", (), None, extra=extra
    )
    access_logger.handle(record)


class RequestObservability:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _incoming_request_id(scope["headers"]) or _new_request_id()
        token = request_id.set(rid)
        id_header = (REQUEST_ID_HEADER, rid.encode("ascii"))
        status = 500  # what the client gets if the app raises before answering
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # A bug, not bad input: logged with its traceback and this request's id, and
            # answered in the service's one error shape, with the id the operator can grep.
            logger.exception("unhandled error", extra={"request_id": rid})
            if started_response:
                raise
            await send_with_id(
                {"type": "http.response.start", "status": 500, "headers": _ERROR_HEADERS}
            )
            await send_with_id({"type": "http.response.body", "body": _ERROR_BODY})
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            self.metrics.request_done(method, route, status, seconds)
            if access_logger.isEnabledFor(logging.INFO):
                extra = {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "request_id": rid,
                }
                organisation_id = _organisation_id(scope)
                if organisation_id is not None:
                    extra["organisation_id"] = organisation_id
                _write_access_line(extra)
            request_id.reset(token)
