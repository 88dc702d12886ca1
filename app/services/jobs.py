"""Jobs: recorded by the API, claimed and run by workers. A training job fits a version
(with its loss history); an evaluation job evaluates a version on a cohort too large to do
within the request (app.services.evaluations).

Lifecycle: queued → running → succeeded | failed | cancelled. A running job holds a lease
renewed by its worker's heartbeat; a job whose lease ran out is re-queued (its partial
history dropped) until it has been attempted ``job_max_attempts`` times, then failed.
"""

import asyncio
import contextlib
import math
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, Executable, delete, event, func, select, update
from sqlalchemy.orm import Session, object_session

from app.core.errors import Conflict
from app.db.base import utcnow
from app.db.models import Job, JobKind, JobStatus, LossChunk
from app.db.paging import paginate
from app.db.session import Database
from app.engine import History, options_used, thin
from app.schemas.activations import ActivationOutcome
from app.schemas.evaluations import evaluation_location
from app.schemas.jobs import JobProgress, JobRead
from app.services import audit
from app.services import webhooks as webhook_service

FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
# How often whoever waits on a JobSignal also reads the database, for other processes' jobs.
POLL_SECONDS = 0.25
LOSS_COLUMNS = 5  # step, epoch, train_loss, val_loss (NaN: none), grad_norm


def job_read(job: Job) -> JobRead:
    training = job.kind == JobKind.training
    return JobRead(
        id=job.id,
        kind=job.kind.value,
        cohort_id=job.cohort_id,
        model=job.model_name,
        algorithm=job.algorithm,
        hyperparameters=options_used(job.params) if training else None,
        activate=job.activate,
        status=job.status.value,
        progress=JobProgress(
            steps_done=job.steps_done,
            total_steps=job.total_steps,
            epoch=job.epoch,
            risk=job.current_risk,
        ),
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        error=job.error,
        warnings=job.warnings,
        model_version=job.model_version,
        evaluation_id=job.evaluation_id,
        evaluation_url=None
        if job.evaluation_id is None or job.model_version is None
        else evaluation_location(job.model_name, job.model_version, job.evaluation_id),
        gate_cohort_id=job.gate_cohort_id,
        activation=None if job.activation is None else ActivationOutcome(**job.activation),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def get_job(session: Session, organisation_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return session.scalars(
        select(Job).where(Job.id == job_id, Job.organisation_id == organisation_id)
    ).one_or_none()


def list_jobs(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    status: JobStatus | None,
    model: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Job], int]:
    query = select(Job).where(Job.organisation_id == organisation_id)
    if status is not None:
        query = query.where(Job.status == status)
    if model is not None:
        query = query.where(Job.model_name == model)
    return paginate(session, query, Job.created_at.desc(), Job.id, limit=limit, offset=offset)


def count_by_status(database: Database) -> dict[JobStatus, int]:
    """Jobs of every organisation by status (for the metrics), in a session of its own."""
    with database.reads() as session:
        rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
        return {JobStatus(status): int(count) for status, count in rows}


def cancel_job(session: Session, job: Job) -> Job:
    """A queued job is cancelled at once; a running one is flagged and its worker stops it
    at its next heartbeat (well within a second)."""
    if job.status in FINISHED:
        raise Conflict(f"the job has already {job.status.value}", loc=["path", "job_id"])
    job.cancel_requested = True
    if job.status == JobStatus.queued:
        finish_job(job, JobStatus.cancelled)
    session.flush()
    return job


# --- worker side -------------------------------------------------------------------


class JobSignal:
    """A count of events in this process (a job queued, a job ended) that worker threads and
    requests on the event loop can wait on, so that they act within milliseconds instead of
    at their next poll. Other processes' events are not counted: whoever waits also polls."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
            waiters = list(self._waiters)
        for loop, woken in waiters:
            # A loop closed since its request began waiting has nobody left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(woken.set)

    def notify_after_commit(self, session: Session) -> None:
        """Once the session's change is committed (a waiter woken earlier would not see it)."""
        event.listen(session, "after_commit", lambda _s: self.notify(), once=True)

    def wait(self, seen: int, timeout: float) -> None:
        """In a thread: until the count moved past `seen`, or `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation != seen, timeout)

    async def wait_async(self, seen: int, timeout: float) -> None:
        """On the event loop, holding no thread: the same wait as `wait`."""
        woken = asyncio.Event()
        waiter = (asyncio.get_running_loop(), woken)
        with self._changed:
            if self._generation != seen:
                return
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout)
        finally:
            with self._changed:
                self._waiters.discard(waiter)


QUEUED = JobSignal()  # a job was queued: idle workers of this process claim it
ENDED = JobSignal()  # a job ended (succeeded, failed, cancelled): `GET /jobs/{id}?wait=` answers


def requeue_stale(session: Session, lease_seconds: float, max_attempts: int) -> int:
    """Jobs whose worker stopped renewing the lease go back to the queue, or fail for good."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    stale = select(Job.id).where(Job.status == JobStatus.running, Job.heartbeat_at < cutoff)
    failed = session.scalars(
        update(Job)
        .where(Job.id.in_(stale), Job.attempts >= max_attempts)
        .values(
            status=JobStatus.failed,
            finished_at=utcnow(),
            worker_id=None,
            error=f"the worker running this job stopped {max_attempts} times (crash or "
            "restart); the job was given up. Resubmit it, or lower its size if it keeps failing",
        )
        .returning(Job)
        .execution_options(synchronize_session=False),
    ).all()
    for job in failed:
        _announce_end(session, job)
    requeued = _affected(
        session,
        update(Job)
        .where(Job.id.in_(stale), Job.attempts < max_attempts)
        .values(status=JobStatus.queued, worker_id=None, heartbeat_at=None)
        .execution_options(synchronize_session=False),
    )
    return len(failed) + requeued


def _affected(session: Session, statement: Executable) -> int:
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)


def claim_next(session: Session, worker_id: str) -> Job | None:
    """Take the oldest queued job. PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers
    never take the same row; SQLite: the writer session's BEGIN IMMEDIATE serialises claims."""
    job = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.queued)
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        return None
    now = utcnow()
    job.status = JobStatus.running
    job.worker_id = worker_id
    job.heartbeat_at = now
    job.started_at = now
    job.attempts += 1
    job.steps_done = 0
    job.epoch = None
    job.current_risk = None
    # A re-run starts its history afresh.
    session.execute(delete(LossChunk).where(LossChunk.job_id == job.id))
    session.flush()
    return job


@dataclass(frozen=True)
class HeartbeatAnswer:
    owned: bool
    cancel_requested: bool


def heartbeat(
    session: Session,
    job_id: uuid.UUID,
    worker_id: str,
    *,
    steps_done: int,
    total: int | None,
    epoch: int | None,
    risk: float | None,
) -> HeartbeatAnswer:
    """Renew the lease and publish progress; ``total`` None (nothing reported yet) keeps the
    planned total."""
    progress: dict[str, object] = {
        "steps_done": steps_done,
        "epoch": epoch,
        "current_risk": risk if risk is None or math.isfinite(risk) else None,
    }
    if total is not None:
        progress["total_steps"] = total
    owned = _affected(
        session,
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.running)
        .values(heartbeat_at=utcnow(), **progress)
        .execution_options(synchronize_session=False),
    )
    if not owned:
        return HeartbeatAnswer(owned=False, cancel_requested=False)
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return HeartbeatAnswer(owned=True, cancel_requested=bool(cancel))


def lock_owned_job(session: Session, job_id: uuid.UUID, worker_id: str) -> Job | None:
    return session.scalars(
        select(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.running)
        .with_for_update()
    ).one_or_none()


def finish_job(
    job: Job, status: JobStatus, *, error: str | None = None, model_version: int | None = None
) -> None:
    """The job's end, told to the organisation's webhooks in the same transaction."""
    job.status = status
    job.finished_at = utcnow()
    job.error = error
    job.model_version = model_version
    job.worker_id = None
    session = object_session(job)
    assert session is not None, "a job is finished inside a session"
    _announce_end(session, job)


def _announce_end(session: Session, job: Job) -> None:
    """The end of a job, in the transaction that ends it: an audit event on behalf of the
    key that queued it, and job.succeeded / job.failed / job.cancelled to the webhooks (ids
    and figures, no error text)."""
    audit.record(
        session,
        job.organisation_id,
        "job.finished",
        key_id=job.created_by,
        object=f"/jobs/{job.id}",
        status=job.status.value,
    )
    webhook_service.enqueue(
        session,
        job.organisation_id,
        f"job.{job.status.value}",
        {
            "job_id": str(job.id),
            "kind": job.kind.value,
            "cohort_id": None if job.cohort_id is None else str(job.cohort_id),
            "model": job.model_name,
            "model_version": job.model_version,
            "status": job.status.value,
            "attempts": job.attempts,
            "steps_done": job.steps_done,
            "total_steps": job.total_steps,
            "risk": job.current_risk,
            "evaluation_id": None if job.evaluation_id is None else str(job.evaluation_id),
        },
    )


def release_job(session: Session, job_id: uuid.UUID, worker_id: str) -> None:
    """Give a running job back to the queue (worker shutting down); the attempt is not held
    against it."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.running)
        .values(
            status=JobStatus.queued,
            worker_id=None,
            heartbeat_at=None,
            attempts=Job.attempts - 1,
        )
        .execution_options(synchronize_session=False)
    )


# --- loss history --------------------------------------------------------------------


@dataclass(frozen=True)
class LossTable:
    """A job's recorded points, column by column; ``val_loss`` is None without a hold-out."""

    total_points: int
    step: np.ndarray
    epoch: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray | None
    grad_norm: np.ndarray


def loss_table(session: Session, job_id: uuid.UUID, max_points: int | None) -> LossTable:
    """The loss history, thinned evenly to ``max_points`` keeping the first and last point."""
    points = read_loss(session, job_id)
    shown = thin(points, max_points)
    step, epoch, train, val, grad = shown.T
    return LossTable(
        total_points=int(points.shape[0]),
        step=step.astype(np.int64),
        epoch=epoch.astype(np.int64),
        train_loss=train,
        val_loss=val if bool(np.isfinite(val).any()) else None,
        grad_norm=grad,
    )


def loss_columns(chunks: Sequence[History]) -> list[np.ndarray]:
    """The stored columns of consecutive history chunks, each one float64 array: step, epoch,
    train_loss, val_loss (NaN when none), grad_norm. One copy per column; the engine's
    thetas and gradients, which are not stored, are not touched."""

    def column(parts: list[np.ndarray]) -> np.ndarray:
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return joined.astype("<f8", copy=False)

    vals = [np.full(len(c), np.nan) if c.val_risk is None else c.val_risk for c in chunks]
    return [
        column([c.step for c in chunks]),
        column([c.epoch for c in chunks]),
        column([c.train_risk for c in chunks]),
        column(vals),
        column([c.grad_norm for c in chunks]),
    ]


def write_loss_chunk(
    session: Session, job_id: uuid.UUID, seq: int, columns: Sequence[np.ndarray]
) -> None:
    """One stored chunk of points: ``columns`` (as loss_columns makes them, sliced to the
    chunk's points) one after the other."""
    session.add(
        LossChunk(
            job_id=job_id,
            seq=seq,
            first_step=int(columns[0][0]),
            n_points=len(columns[0]),
            data=b"".join(np.ascontiguousarray(c, dtype="<f8").tobytes() for c in columns),
        )
    )


def read_loss(session: Session, job_id: uuid.UUID) -> np.ndarray:
    chunks = session.execute(
        select(LossChunk.n_points, LossChunk.data)
        .where(LossChunk.job_id == job_id)
        .order_by(LossChunk.seq)
    ).all()
    if not chunks:
        return np.empty((0, LOSS_COLUMNS))
    return np.concatenate(
        [np.frombuffer(data, dtype="<f8").reshape(LOSS_COLUMNS, n).T for n, data in chunks]
    )
