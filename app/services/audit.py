"""The audit trail: who did what, when, to which object. One function records an event
(``record``), in the caller's session, so the event commits or rolls back with the change it
records. /predict, a read, is counted in memory and written in batches (``PredictCounts``).

An event holds ids, names of keys and models, and counts: never grades, pupils' ids or
request bodies.
"""

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.logging import request_id
from app.db.base import utcnow
from app.db.models import ApiKey, AuditEvent
from app.db.session import Database, write_session

logger = logging.getLogger("gradecast.audit")

# The actions the service records; a caller adds its own here (webhook.*, evaluation.*).
ACTIONS = frozenset(
    {
        "cohort.uploaded",
        "cohort.erased",
        "student.erased",
        "job.queued",
        "job.cancelled",
        "job.finished",
        "version.created",
        "version.activated",
        "predict",
        "key.created",
        "key.revoked",
        "evaluation.created",
        "webhook.created",
        "webhook.deleted",
    }
)
ACTION_PATTERN = r"^[a-z_]+(\.[a-z_]+)?$"
MAX_FIGURES = 20

Figure = int | float | str | bool | None


def _checked(figures: dict[str, Figure] | None) -> dict[str, Figure] | None:
    """Figures are a few scalars (counts, names, options), never a list of pupils."""
    if figures is None:
        return None
    if len(figures) > MAX_FIGURES:
        raise ValueError(f"an audit event holds at most {MAX_FIGURES} figures")
    for name, value in figures.items():
        if not isinstance(value, Figure):
            raise ValueError(f"audit figure {name!r} is not a scalar")
        if isinstance(value, str) and len(value) > 200:
            raise ValueError(f"audit figure {name!r} is too long")
        if isinstance(value, float) and not math.isfinite(value):
            figures = {**figures, name: None}
    return figures


def record(
    session: Session,
    organisation_id: uuid.UUID,
    action: str,
    *,
    key_id: uuid.UUID | None,
    object: str | None,
    status: str = "ok",
    figures: dict[str, Figure] | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Add an audit event to the session: it is written by the caller's commit, or not at
    all. ``key_id`` None: the service itself (a worker, the retention sweep). ``object`` is
    the path of what the action touched, e.g. ``/cohorts/<id>``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to ACTIONS")
    key_name = None
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        key_name = key.name if key is not None else None
    session.add(
        AuditEvent(
            organisation_id=organisation_id,
            occurred_at=occurred_at or utcnow(),
            key_id=key_id,
            key_name=key_name,
            action=action,
            object=object,
            request_id=request_id.get(),
            status=status,
            figures=_checked(figures),
        )
    )


# --- /predict: counted in memory, written in batches -------------------------------------


class Caller(Protocol):
    @property
    def organisation_id(self) -> uuid.UUID: ...
    @property
    def key_id(self) -> uuid.UUID: ...


class _Bucket(NamedTuple):
    # A tuple, not a frozen dataclass: made and hashed on every /predict (0.1 µs, not 1.2);
    # the ids as their ints, which hash in C (a UUID's hash is a Python call).
    organisation_id: int
    key_id: int
    model: str
    version: int
    minute: int


class PredictCounts:
    """Pupils predicted per key, model, version and minute, in this process, until the next
    flush writes one ``predict`` event per bucket. ``add`` is a dict update under a lock: it
    costs /predict nothing measurable. Counts of a process that is killed before its flush
    are lost (at most ``audit_flush_seconds`` of them)."""

    def __init__(self) -> None:
        self._counts: dict[_Bucket, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, caller: Caller, model: str, version: int, pupils: int) -> None:
        bucket = _Bucket(
            caller.organisation_id.int, caller.key_id.int, model, version, int(time.time() // 60)
        )
        with self._lock:
            counts = self._counts.get(bucket)
            if counts is None:
                self._counts[bucket] = [1, pupils]
            else:
                counts[0] += 1
                counts[1] += pupils

    def flush(self, database: Database) -> int:
        """Write the counts gathered so far; returns the number of events written. On a
        database error they are kept for the next flush."""
        with self._lock:
            taken, self._counts = self._counts, {}
        if not taken:
            return 0
        try:
            with write_session(database) as session:
                for bucket, (requests, pupils) in taken.items():
                    record(
                        session,
                        uuid.UUID(int=bucket.organisation_id),
                        "predict",
                        key_id=uuid.UUID(int=bucket.key_id),
                        object=f"/models/{bucket.model}/versions/{bucket.version}",
                        figures={
                            "model": bucket.model,
                            "version": bucket.version,
                            "pupils": pupils,
                            "requests": requests,
                        },
                        occurred_at=datetime.fromtimestamp(bucket.minute * 60, UTC),
                    )
        except Exception:
            with self._lock:
                for bucket, (requests, pupils) in taken.items():
                    counts = self._counts.setdefault(bucket, [0, 0])
                    counts[0] += requests
                    counts[1] += pupils
            raise
        return len(taken)

    def start(self, database: Database, every_seconds: float) -> None:
        def loop() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.flush(database)
                except Exception:  # the database is away: the counts wait for the next flush
                    logger.warning("could not write the /predict audit counts; will retry")

        self._thread = threading.Thread(target=loop, name="gradecast-audit-flush", daemon=True)
        self._thread.start()

    def stop(self, database: Database) -> None:
        """Stop the periodic flush and write what is left (graceful shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush(database)
        except Exception:
            logger.warning("could not write the last /predict audit counts at shutdown")


# --- reading and pruning -----------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    key_id: uuid.UUID | None = None
    object: str | None = None


def list_events(
    session: Session,
    organisation_id: uuid.UUID,
    where: EventFilter,
    *,
    after: int | None,
    limit: int,
) -> tuple[Sequence[AuditEvent], int | None]:
    """Oldest first, the organisation's own events only; the cursor is the last event's id
    (None once the last page is reached)."""
    query = select(AuditEvent).where(AuditEvent.organisation_id == organisation_id)
    if where.since is not None:
        query = query.where(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.occurred_at < where.until)
    if where.action is not None:
        query = query.where(AuditEvent.action == where.action)
    if where.key_id is not None:
        query = query.where(AuditEvent.key_id == where.key_id)
    if where.object is not None:
        query = query.where(AuditEvent.object == where.object)
    if after is not None:
        query = query.where(AuditEvent.id > after)
    rows = session.scalars(query.order_by(AuditEvent.id).limit(limit + 1)).all()
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def prune_events(session: Session, retention_days: int) -> int:
    """Delete the events older than the retention (GRADECAST_AUDIT_RETENTION_DAYS): the one
    way an event ever leaves the table."""
    cutoff = utcnow() - timedelta(days=retention_days)
    result = session.execute(delete(AuditEvent).where(AuditEvent.occurred_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def figures_text(figures: dict[str, Figure]) -> str:
    """An event's figures in one CSV cell, as compact JSON."""
    return json.dumps(figures, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
