"""Per-organisation quotas (OWASP API4): queued+running jobs, stored pupils, cohorts.

Each check locks the organisation's row first (PostgreSQL; SQLite's writer lock does the
same), so two concurrent requests cannot both pass the last free place. Over a quota that
frees itself (jobs end): 429 with ``Retry-After``; over one that needs a deletion (pupils,
cohorts): 409. Both name the setting (code ``quota_exceeded``).
"""

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import QuotaExceeded, QuotaExceededRetryLater
from app.db.models import Cohort, Job, JobStatus, Organisation

JOB_QUOTA_RETRY_SECONDS = 10


def _lock_organisation(session: Session, organisation_id: uuid.UUID) -> None:
    session.execute(
        select(Organisation.id).where(Organisation.id == organisation_id).with_for_update()
    )


def check_job_quota(session: Session, organisation_id: uuid.UUID, settings: Settings) -> None:
    """Room for one more queued job, or a 429 naming GRADECAST_MAX_ACTIVE_JOBS."""
    _lock_organisation(session, organisation_id)
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.organisation_id == organisation_id,
            Job.status.in_((JobStatus.queued, JobStatus.running)),
        )
    )
    limit = settings.max_active_jobs
    if int(active or 0) >= limit:
        raise QuotaExceededRetryLater(
            f"quota: the organisation already has {limit} queued or running jobs, its limit "
            "(GRADECAST_MAX_ACTIVE_JOBS); retry when one has finished",
            loc=["body"],
            headers={"Retry-After": str(JOB_QUOTA_RETRY_SECONDS)},
        )


def check_cohort_quota(
    session: Session, organisation_id: uuid.UUID, pupils: int, settings: Settings
) -> None:
    """Room for one more cohort of ``pupils`` pupils, or a 409 naming the limit."""
    _lock_organisation(session, organisation_id)
    cohorts, stored = session.execute(
        select(func.count(), func.coalesce(func.sum(Cohort.n_students), 0)).where(
            Cohort.organisation_id == organisation_id
        )
    ).one()
    if int(cohorts) >= settings.max_cohorts:
        raise QuotaExceeded(
            f"quota: the organisation already holds {settings.max_cohorts} cohorts, its limit "
            "(GRADECAST_MAX_COHORTS); delete one first",
            loc=["body"],
        )
    if int(stored) + pupils > settings.max_stored_pupils:
        raise QuotaExceeded(
            f"quota: {pupils} more pupils would make {int(stored) + pupils}, over the "
            f"organisation's limit of {settings.max_stored_pupils} stored pupils "
            "(GRADECAST_MAX_STORED_PUPILS); delete a cohort first",
            loc=["body"],
        )
