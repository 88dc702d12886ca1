"""Structured JSON logs on stderr. Messages never carry grades, pupil ids or keys."""

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

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


# What every LogRecord carries: written as time, level, logger and message, or not at all
# (uvicorn's `color_message` is its message with terminal colours).
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the record's `extra`
    fields, and a traceback as `exc_info`. Written for what it costs: a request writes an
    access line, and python-json-logger's formatter took 10 µs of the request for it."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """``2026-09-01 08:00:00,123``, logging's own format, strftime once a second."""
        second, stamp = self._second
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
            self._second = (second, stamp)
        return f"{stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in sorted(fields.keys() - _RECORD_ATTRIBUTES):
            if not key.startswith("_"):
                line[key] = fields[key]
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    handler.addFilter(RequestIdFilter())
    # Threads and processes are not written in a line (reserved attributes): not worth
    # gathering for every record, an access line each request (the logging HOWTO's
    # "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    # Alembic says at INFO which plugins it set up and which dialect it found, at every
    # start and every readiness check; `gradecast migrate` logs what it applied instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
