"""Structured JSON logs on stderr. Messages never carry grades, pupil ids or keys."""

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

# The id of the request being answered (set by the request middleware), so that every
# record logged on its behalf, in the event loop or the thread pool, can be tied to it.
request_id: ContextVar[str | None] = ContextVar("gradecast_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged while a request is being answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            current = request_id.get()
            if current is not None:
                record.request_id = current
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    # The library's orjson formatter: the same fields, written in a third of the time (every
    # request writes an access line).
    handler.setFormatter(
        OrjsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # uvicorn's copy of its message with terminal colours: noise in a JSON line.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    # Alembic says at INFO which plugins it set up and which dialect it found, at every
    # start and every readiness check; `gradecast migrate` logs what it applied instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
