"""Structured JSON logs on stderr. Messages never carry grades, pupil ids or keys."""

import logging
import os
import sys
import threading
import time
import weakref
from contextvars import ContextVar
from typing import Any, TextIO

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
    fields (sorted by name), and a traceback as `exc_info`. Written for what it costs: a
    request writes an access line, and python-json-logger's formatter took 10 µs of the
    request for it."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")
        # The extra fields of each shape of record (the names of its attributes, in order),
        # found once: a request's access line has one of two shapes, and scanning and
        # sorting every record's __dict__ was a third of the formatter's time.
        self._extras: dict[tuple[str, ...], tuple[str, ...]] = {}

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """``2026-09-01 08:00:00,123``, logging's own format, strftime once a second."""
        return self._stamp(record.created, record.msecs)

    def _stamp(self, created: float, msecs: float) -> str:
        second, stamp = self._second
        if int(created) != second:
            second = int(created)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
            self._second = (second, stamp)
        return "%s,%03d" % (stamp, msecs)  # noqa: UP031 (half an f-string's cost)

    def _extra_names(self, shape: tuple[str, ...]) -> tuple[str, ...]:
        names = self._extras.get(shape)
        if names is None:
            names = tuple(
                sorted(k for k in shape if k not in _RECORD_ATTRIBUTES and not k.startswith("_"))
            )
            if len(self._extras) >= _SHAPES_KEPT:
                self._extras.clear()
            self._extras[shape] = names
        return names

    def format(self, record: logging.LogRecord) -> str:
        line = self._head(
            self.formatTime(record), record.levelname, record.name, record.getMessage()
        )
        fields = record.__dict__
        for key in self._extra_names(tuple(fields)):
            line[key] = fields[key]
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return _dumped(line)

    def fields_line(
        self, created: float, level: int, name: str, message: str, extra: dict[str, Any]
    ) -> str:
        """What ``format`` writes for a record of ``name`` made at ``created`` with this
        ``extra``, without a traceback or arguments, as one line: the same text, without
        the LogRecord (see BatchedLines.write_fields)."""
        line = self._head(
            self._stamp(created, int((created - int(created)) * 1000)),  # as LogRecord's msecs
            logging.getLevelName(level),
            name,
            message,
        )
        for key in self._extra_names(tuple(extra)):
            line[key] = extra[key]
        return _dumped(line)

    @staticmethod
    def _head(stamp: str, level: str, name: str, message: str) -> dict[str, Any]:
        return {"time": stamp, "level": level, "logger": name, "message": message}


def _dumped(line: dict[str, Any]) -> str:
    return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


# Records of more shapes than this (a logger whose `extra` keys vary without end) start
# the formatter's memory of shapes afresh rather than grow it.
_SHAPES_KEPT = 256


class BatchedLines(logging.StreamHandler[TextIO]):
    """A StreamHandler that writes its lines in batches rather than one write (a system
    call) a line: a line of WARNING or above is written at once, with the lines before it;
    the others within ``interval`` seconds, by a thread of the handler's own, or as soon
    as ``capacity`` of them wait. ``flush()`` writes them all, and ``logging.shutdown``
    (at exit, after a SIGTERM too) calls it; a SIGKILL loses at most the last interval's
    lines."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        capacity: int = 256,
        interval: float = 0.1,
        flush_level: int = logging.WARNING,
        batched: frozenset[str] | None = None,
    ) -> None:
        super().__init__(stream)
        # The loggers whose lines wait (None: every logger's); another's line is written at
        # once, with the lines before it.
        self.batched = batched
        self.capacity = capacity
        self.interval = interval
        self.flush_level = flush_level
        self._lines: list[str] = []
        self._waiting = threading.Event()  # set when a line waits for the flusher
        self._flusher: threading.Thread | None = None
        self._closed = False
        _batching.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (Handler.handle).
        try:
            self._add(self.format(record), record.name, record.levelno)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_fields(self, name: str, level: int, message: str, extra: dict[str, Any]) -> None:
        """The line that logging ``message`` with ``extra`` on the logger ``name`` would
        write through this handler, written without a LogRecord: for a caller that has
        checked with ``direct_lines`` that nothing else would see the record. The access
        line of every request: the record and its trip through Logger.handle cost a
        one-pupil /predict 8-10 µs of its 120 (in process, alternating)."""
        formatter = self.formatter
        assert isinstance(formatter, JsonLines)
        if "request_id" not in extra and (current := request_id.get()) is not None:
            extra = {**extra, "request_id": current}  # what RequestIdFilter would add
        line = formatter.fields_line(time.time(), level, name, message, extra)
        self.acquire()
        try:
            self._add(line, name, level)
        finally:
            self.release()

    def _add(self, line: str, name: str, level: int) -> None:
        self._lines.append(line)
        waiting = len(self._lines)
        if (
            level >= self.flush_level
            or waiting >= self.capacity
            or self._closed
            or (self.batched is not None and name not in self.batched)
        ):
            self.flush()
        elif waiting == 1:
            self._wake_flusher()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines:
                text = self.terminator.join(self._lines) + self.terminator
                self._lines.clear()
                self.stream.write(text)
            super().flush()
        finally:
            self.release()

    def close(self) -> None:
        self.acquire()
        try:
            self._closed = True
            self._waiting.set()
            self.flush()
        finally:
            self.release()
            super().close()

    def _wake_flusher(self) -> None:
        # Once an interval at most (the first line of a batch); the flusher is started
        # here, and again in a process forked after it (where it does not run).
        if self._flusher is None or not self._flusher.is_alive():
            self._waiting = threading.Event()
            self._flusher = threading.Thread(
                target=self._flush_every_interval, name="gradecast-log-flusher", daemon=True
            )
            self._flusher.start()
        self._waiting.set()

    def _flush_every_interval(self) -> None:
        while True:
            self._waiting.wait()
            if self._closed:
                return
            time.sleep(self.interval)  # the batch fills meanwhile
            # Cleared before the lines are taken: a line that comes after sets it again.
            self._waiting.clear()
            try:
                self.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "writing batched log lines"}))

    def _forget_parents_lines(self) -> None:
        # In a forked child: the parent writes the lines it had, and its flusher is not here.
        self._lines.clear()
        self._flusher = None


_batching: "weakref.WeakSet[BatchedLines]" = weakref.WeakSet()


def direct_lines(logger: logging.Logger, level: int) -> BatchedLines | None:
    """The handler that writes ``logger``'s records of ``level`` when logging is as
    configure_logging left it: the logger enabled for ``level``, no handler or filter of
    its own or of a logger between it and the root, and at the root one BatchedLines with
    our JsonLines and no filter but RequestIdFilter. None otherwise (caplog, an operator's
    dictConfig, another handler…): the record then goes through logging as usual."""
    if not logger.isEnabledFor(level):
        return None
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    if node is None or node.filters or len(node.handlers) != 1:
        return None
    handler = node.handlers[0]
    if (
        type(handler) is not BatchedLines
        or type(handler.formatter) is not JsonLines
        or handler.level > level
        or not all(type(f) is RequestIdFilter for f in handler.filters)
    ):
        return None
    return handler


def _after_fork_in_child() -> None:
    for handler in _batching:
        handler._forget_parents_lines()


os.register_at_fork(after_in_child=_after_fork_in_child)


def configure_logging(level: str = "INFO") -> None:
    # Only the access lines wait: uvicorn re-raises SIGTERM once it has stopped, and a
    # process killed by its signal runs no logging.shutdown; its last lines ("Shutting
    # down", "Finished server process") are written at once, and with them every access
    # line before them.
    handler = BatchedLines(sys.stderr, batched=frozenset({"gradecast.access"}))
    handler.setFormatter(JsonLines())
    handler.addFilter(RequestIdFilter())
    # Threads and processes are not written in a line (reserved attributes): not worth
    # gathering for every record, an access line each request (the logging HOWTO's
    # "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for previous in root.handlers:
        if isinstance(previous, BatchedLines):
            previous.close()  # its lines written, its flusher stopped
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    # Alembic says at INFO which plugins it set up and which dialect it found, at every
    # start and every readiness check; `gradecast migrate` logs what it applied instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
