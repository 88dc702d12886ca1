"""How long pupils' data and records are kept, and the sweep that enforces it.

A cohort's ``retain_until`` comes from its upload, else GRADECAST_COHORT_RETENTION_DAYS;
none means kept until deleted. The workers' housekeeping erases expired cohorts exactly as
DELETE /cohorts/{id} does (``delete_cohort``: erasure record, audit event, WAL truncation),
prunes audit events past GRADECAST_AUDIT_RETENTION_DAYS, and drops idempotent answers older
than their 24 hours.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.db.base import utcnow
from app.db.locks import lock_expired_cohort
from app.db.models import Cohort, IdempotentAnswer
from app.db.session import Database, write_session
from app.services import audit
from app.services.cohorts import delete_cohort

logger = logging.getLogger("gradecast.retention")

# How long an Idempotency-Key's answer is replayed.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_RETENTION = timedelta(days=36_500)


def retain_until(requested: datetime | None, default_days: int | None) -> datetime | None:
    """An upload's retention deadline: the one asked for (UTC when it has no offset; it must
    be in the future), else the organisation default, else None (kept)."""
    now = utcnow()
    if requested is None:
        return None if default_days is None else now + timedelta(days=default_days)
    if requested.tzinfo is None:
        requested = requested.replace(tzinfo=UTC)
    elif requested.year >= 9999:  # astimezone() would overflow past year 9999
        requested = datetime.max.replace(tzinfo=UTC)
    if not now < requested < now + MAX_RETENTION:
        raise InvalidInput(
            "retain_until must be in the future and within 100 years, e.g. 2031-07-01T00:00:00Z",
            loc=["query", "retain_until"],
        )
    return requested.astimezone(UTC)


def erase_expired_cohorts(database: Database, now: datetime | None = None) -> int:
    """Erase every cohort whose retention has run out, one transaction each; returns how
    many this call erased. Safe to run in several workers at once, and again: a cohort is
    erased once, by whichever gets its lock first."""
    moment = now or utcnow()
    with database.reads() as session:
        expired = session.scalars(
            select(Cohort.id).where(Cohort.retain_until <= moment).order_by(Cohort.retain_until)
        ).all()
    erased = 0
    for cohort_id in expired:
        with write_session(database) as session:
            cohort = lock_expired_cohort(session, cohort_id, moment)
            if cohort is None:
                continue
            delete_cohort(session, cohort, None, reason="retention")
            erased += 1
    return erased


def prune_idempotent_answers(database: Database) -> int:
    with write_session(database) as session:
        result = session.execute(
            delete(IdempotentAnswer).where(
                IdempotentAnswer.created_at < utcnow() - IDEMPOTENCY_WINDOW
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Swept:
    cohorts: int
    audit_events: int
    idempotent_answers: int


def housekeeping(database: Database, settings: Settings) -> Swept:
    """One round of every retention rule (the workers call it every housekeeping_seconds)."""
    cohorts = erase_expired_cohorts(database)
    events = 0
    if settings.audit_retention_days is not None:
        with write_session(database) as session:
            events = audit.prune_events(session, settings.audit_retention_days)
    swept = Swept(cohorts, events, prune_idempotent_answers(database))
    if cohorts or events:
        logger.info(
            "retention sweep",
            extra={"cohorts_erased": cohorts, "audit_events_pruned": events},
        )
    return swept
