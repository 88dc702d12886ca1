"""Transaction-scoped locks beyond row locks."""

import hashlib
import uuid
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db.models import Cohort, Job

# Any constant: one transaction-scoped lock that serialises activations on PostgreSQL.
_ACTIVATION_LOCK = 0x67726164


def serialise_activations(session: Session) -> None:
    """Until this transaction ends, no other one can record an activation (PostgreSQL).

    Activation ids come from a sequence: without this, a transaction holding id 7 could
    commit after one holding id 8, and a cache that saw MAX(id) = 8 would miss it. SQLite's
    writers are already serialised by BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATION_LOCK})


def lock_jobs_of_cohort(session: Session, cohort_id: uuid.UUID) -> None:
    """Lock the jobs of a cohort about to be deleted, before the cohort's own row.

    A worker finishing a job locks the job, then (inserting the version that names the
    cohort) takes a key-share lock on the cohort; deleting the cohort locks the cohort, then
    (its jobs' cohort_id is set to NULL) the jobs. Taking the jobs first gives both the same
    order, so PostgreSQL never has to break a deadlock (a 503) between them.
    """
    session.execute(
        select(Job.id).where(Job.cohort_id == cohort_id).order_by(Job.id).with_for_update()
    ).all()


def lock_expired_cohort(session: Session, cohort_id: uuid.UUID, now: datetime) -> Cohort | None:
    """The cohort, locked for erasure, if it still exists and its retention has run out;
    None when another worker (or a DELETE) erased it first, or its retention was extended.

    Its jobs are locked first, as ``lock_jobs_of_cohort`` explains; a second sweeper waits
    here until the first commits, then finds no row.
    """
    lock_jobs_of_cohort(session, cohort_id)
    return session.scalars(
        select(Cohort)
        .where(Cohort.id == cohort_id, Cohort.retain_until <= now)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def try_lock_idempotency_key(session: Session, organisation_id: uuid.UUID, key: str) -> bool:
    """Hold an organisation's Idempotency-Key until this transaction ends; False when another
    transaction holds it (PostgreSQL, a transaction-scoped advisory lock). SQLite: always True,
    the caller's first statement took the database's write lock (BEGIN IMMEDIATE), which
    serialises requests with a key already."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    digest = hashlib.sha256(f"{organisation_id}:{key}".encode()).digest()
    lock = int.from_bytes(digest[:8], "big", signed=True)
    taken = session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock})
    return bool(taken)
