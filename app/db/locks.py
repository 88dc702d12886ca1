"""Transaction-scoped locks beyond row locks."""

import uuid

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db.models import Job

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
