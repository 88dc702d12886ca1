"""Workers: claim queued jobs, run the learning engine, store Θ as a new model version, or
compute an evaluation too large for the request and hand it to the evaluations' service.

Each job runs in the worker's thread; a heartbeat thread renews the lease twice a second,
publishes progress, writes the loss history recorded so far, and learns of cancellation.
The database session of each step is the worker's own, never a request's.
"""

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ServiceError
from app.core.metrics import DeliveryMetrics, JobMetrics, serve_registry
from app.db.migrations import wait_for_database
from app.db.models import Cohort, Job, JobKind, JobStatus
from app.db.session import Database, open_database, write_session
from app.engine import (
    CrossValidation,
    EngineError,
    FitResult,
    History,
    Progress,
    TrainingCancelled,
    cross_validate,
    fit,
)
from app.services import evaluations as evaluation_service
from app.services import jobs as job_service
from app.services.cohorts import get_cohort, load_grades
from app.services.retention import housekeeping
from app.services.training import complete_job, kfold_folds, training_config
from app.worker.deliveries import DeliveryLoop

logger = logging.getLogger("gradecast.worker")

HEARTBEAT_SECONDS = 0.4
CHUNK_POINTS = 50_000


class LeaseLost(Exception):
    """Another worker took the job over (this one was presumed dead)."""


@dataclass
class _RunState:
    """What the engine thread shares with the heartbeat thread."""

    progress: Progress | None = None
    # The engine's chunks as it handed them (read-only views of its history: no copy);
    # their columns are packed when they are written.
    pending: list[History] = field(default_factory=list)
    next_seq: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    lease_lost: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_pending(self) -> list[History]:
        with self.lock:
            pending, self.pending = self.pending, []
        return pending


class Worker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        name: str | None = None,
        metrics: JobMetrics | None = None,
        on_version: Callable[[], None] | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.metrics = metrics
        # Called once a job's version is committed (this process's /predict cache).
        self.on_version = on_version
        self.worker_id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self._last_recovery = 0.0
        self._last_housekeeping = 0.0

    # --- the loop ----------------------------------------------------------------

    def run_forever(self) -> None:
        logger.info("worker started", extra={"worker": self.worker_id})
        while not self.stopping.is_set():
            try:
                seen = job_service.QUEUED.generation
                if not self.run_once():
                    job_service.QUEUED.wait(seen, job_service.POLL_SECONDS)
            except OperationalError:
                logger.warning(
                    "database unavailable; worker retrying", extra={"worker": self.worker_id}
                )
                self.stopping.wait(1.0)
            except Exception:
                logger.exception("worker loop error")
                self.stopping.wait(1.0)
        logger.info("worker stopped", extra={"worker": self.worker_id})

    def run_once(self) -> bool:
        """Claim and run one job; False when the queue was empty."""
        self._recover_stale()
        self._housekeep()
        with write_session(self.database) as session:
            job = job_service.claim_next(session, self.worker_id)
            if job is None:
                return False
            job_id = job.id
        self._run(job_id)
        return True

    def _recover_stale(self) -> None:
        now = time.monotonic()
        if now - self._last_recovery < min(2.0, self.settings.job_lease_seconds / 2):
            return
        self._last_recovery = now
        with write_session(self.database) as session:
            count = job_service.requeue_stale(
                session, self.settings.job_lease_seconds, self.settings.job_max_attempts
            )
        if count:
            job_service.ENDED.notify()
            logger.warning("re-queued or failed jobs with an expired lease", extra={"jobs": count})

    def _housekeep(self) -> None:
        """The retention sweeps, every housekeeping_seconds (and at the worker's start)."""
        now = time.monotonic()
        if self._last_housekeeping and now - self._last_housekeeping < (
            self.settings.housekeeping_seconds
        ):
            return
        self._last_housekeeping = now
        housekeeping(self.database, self.settings)

    # --- one job -----------------------------------------------------------------

    def _run(self, job_id: uuid.UUID) -> None:
        """Load, run, settle: every way a job can end is settled here, in one place."""
        state = _RunState()
        started = time.monotonic()
        outcome = "failed"
        try:
            with self.database.reads() as session:
                kind = session.get_one(Job, job_id).kind
            if kind == JobKind.evaluation:
                outcome = self._run_evaluation(job_id, state)
            else:
                outcome = self._run_training(job_id, state)
            if outcome == "succeeded":
                logger.info(
                    "job succeeded",
                    extra={"job": str(job_id), "seconds": round(time.monotonic() - started, 3)},
                )
        except Exception as exc:
            outcome = self._settle_failure(job_id, state, exc)
        finally:
            state.finished.set()
            # Settled and committed (or left to another worker): requests waiting on a job
            # (`GET /jobs/{id}?wait=`) read it again now.
            job_service.ENDED.notify()
            if self.metrics is not None:
                self.metrics.job_ended(outcome, started)

    def _run_training(self, job_id: uuid.UUID, state: _RunState) -> str:
        loaded = self._load(job_id)
        if loaded is None:
            self._fail(job_id, "the cohort of this job was deleted before it ran")
            return "failed"
        job, cohort, grades = loaded
        result, cv = self._train(job, grades, state)
        self._flush(job_id, state)
        self._succeed(job, cohort, grades, result, cv)
        return "succeeded"

    def _run_evaluation(self, job_id: uuid.UUID, state: _RunState) -> str:
        """The figures computed in a read session, with the heartbeat beside (no write waits
        on them), then stored by the evaluations' service in one short write."""
        with self._heartbeat(job_id, state), self.database.reads() as session:
            job = session.get_one(Job, job_id)
            _, version, cohort = evaluation_service.job_subject(session, job)
            figures = evaluation_service.compute(
                session, version, cohort, evaluation_service.LOC_JOB
            )
        if self._should_stop(state):
            raise TrainingCancelled(0, 1)
        with write_session(self.database) as session:
            owned = job_service.lock_owned_job(session, job_id, self.worker_id)
            if owned is None:
                raise LeaseLost
            if owned.cancel_requested:
                state.cancel.set()
                raise TrainingCancelled(0, 1)
            evaluation_service.complete_evaluation_job(session, owned, figures)
        return "succeeded"

    def _load(self, job_id: uuid.UUID) -> tuple[Job, Cohort, np.ndarray] | None:
        """The job, its cohort and the cohort's grades; None when the cohort is gone."""
        with self.database.reads() as session:
            job = session.get_one(Job, job_id)
            if job.cohort_id is None:
                return None
            cohort = get_cohort(session, job.organisation_id, job.cohort_id)
            if cohort is None:
                return None
            return job, cohort, load_grades(session, cohort)

    def _train(
        self, job: Job, grades: np.ndarray, state: _RunState
    ) -> tuple[FitResult, CrossValidation | None]:
        """The engine's fit, then a kfold job's folds, with the heartbeat running beside."""
        with self._heartbeat(job.id, state):
            result = self._fit(job, grades, state)
            return result, self._cross_validate(job, grades, state, result.metrics.n_steps)

    @contextmanager
    def _heartbeat(self, job_id: uuid.UUID, state: _RunState) -> Iterator[None]:
        """The heartbeat thread, renewing the lease while the block runs."""
        heartbeat = threading.Thread(
            target=self._heartbeat_loop,
            args=(job_id, state),
            name="gradecast-heartbeat",
            daemon=True,
        )
        heartbeat.start()
        try:
            yield
        finally:
            state.finished.set()
            heartbeat.join()

    def _settle_failure(self, job_id: uuid.UUID, state: _RunState, exc: Exception) -> str:
        """Record how a job that did not succeed ended; returns the outcome for metrics."""
        if isinstance(exc, TrainingCancelled):
            if state.lease_lost.is_set():
                logger.warning("job taken over by another worker", extra={"job": str(job_id)})
                return "lease_lost"
            if state.cancel.is_set():
                self._finish(job_id, JobStatus.cancelled, "cancelled on request")
                return "cancelled"
            with write_session(self.database) as session:
                job_service.release_job(session, job_id, self.worker_id)
            logger.info("job released for another worker", extra={"job": str(job_id)})
            return "released"
        if isinstance(exc, EngineError):
            # Divergence, degenerate data: a sentence the user can act on, and the history
            # recorded up to that point, to see where it went wrong.
            self._flush(job_id, state)
            self._fail(job_id, str(exc))
            return "failed"
        if isinstance(exc, ServiceError):
            # An evaluation job's cohort, model or version gone, or its pupils changed.
            self._fail(job_id, exc.detail)
            return "failed"
        if isinstance(exc, LeaseLost):
            logger.warning("job taken over by another worker", extra={"job": str(job_id)})
            return "lease_lost"
        if isinstance(exc, OperationalError):
            # The database is away (or chose this transaction as a deadlock victim): the job
            # keeps its lease until it expires, then runs again, like after a crash.
            logger.warning("database error while running a job", extra={"job": str(job_id)})
            return "released"
        logger.exception("job failed unexpectedly", extra={"job": str(job_id)}, exc_info=exc)
        self._fail(
            job_id,
            f"internal error ({type(exc).__name__}); the job can be resubmitted, and the "
            "operators have the details in the logs",
        )
        return "failed"

    def _fit(self, job: Job, grades: np.ndarray, state: _RunState) -> FitResult:
        def on_progress(progress: Progress) -> None:
            state.progress = progress

        def on_history(chunk: History) -> None:
            with state.lock:
                state.pending.append(chunk)

        return fit(
            grades[:, :-1],
            grades[:, -1],
            training_config(job.params),
            on_progress=on_progress,
            on_history=on_history,
            should_stop=lambda: self._should_stop(state),
        )

    def _should_stop(self, state: _RunState) -> bool:
        return state.cancel.is_set() or state.lease_lost.is_set() or self.stopping.is_set()

    def _cross_validate(
        self, job: Job, grades: np.ndarray, state: _RunState, offset: int
    ) -> CrossValidation | None:
        """A kfold job's folds: from per-fold statistics (gd, closed_form) or one sgd fit
        per fold, its progress following the final fit's `offset` steps."""
        folds = kfold_folds(job.params)
        if folds is None:
            return None

        def on_progress(progress: Progress) -> None:
            state.progress = Progress(
                offset + progress.steps_done,
                offset + progress.total_steps,
                progress.epoch,
                progress.risk,
            )

        return cross_validate(
            grades[:, :-1],
            grades[:, -1],
            training_config(job.params),
            folds,
            on_progress=on_progress,
            should_stop=lambda: self._should_stop(state),
        )

    def _heartbeat_loop(self, job_id: uuid.UUID, state: _RunState) -> None:
        while not state.finished.wait(HEARTBEAT_SECONDS):
            try:
                self._beat(job_id, state)
            except OperationalError:
                logger.warning("heartbeat failed: database unavailable", extra={"job": str(job_id)})
            except Exception:
                logger.exception("heartbeat failed", extra={"job": str(job_id)})

    def _beat(self, job_id: uuid.UUID, state: _RunState) -> None:
        progress = state.progress
        pending = state.take_pending()
        with write_session(self.database) as session:
            answer = job_service.heartbeat(
                session,
                job_id,
                self.worker_id,
                steps_done=progress.steps_done if progress else 0,
                total=progress.total_steps if progress else None,
                epoch=progress.epoch if progress else None,
                risk=progress.risk if progress else None,
            )
            if not answer.owned:
                state.lease_lost.set()
                return
            if self.metrics is not None:
                self.metrics.lease_renewals.inc()
            self._write_points(session, job_id, state, pending)
        if answer.cancel_requested:
            state.cancel.set()

    def _write_points(
        self, session: Session, job_id: uuid.UUID, state: _RunState, pending: list[History]
    ) -> None:
        if not pending:
            return
        columns = job_service.loss_columns(pending)
        for start in range(0, len(columns[0]), CHUNK_POINTS):
            job_service.write_loss_chunk(
                session,
                job_id,
                state.next_seq,
                [column[start : start + CHUNK_POINTS] for column in columns],
            )
            state.next_seq += 1

    def _flush(self, job_id: uuid.UUID, state: _RunState) -> None:
        pending = state.take_pending()
        if not pending:
            return
        with write_session(self.database) as session:
            if job_service.lock_owned_job(session, job_id, self.worker_id) is None:
                raise LeaseLost
            self._write_points(session, job_id, state, pending)

    def _succeed(
        self,
        job: Job,
        cohort: Cohort,
        grades: np.ndarray,
        result: FitResult,
        cross_validation: CrossValidation | None,
    ) -> None:
        try:
            with write_session(self.database) as session:
                owned = job_service.lock_owned_job(session, job.id, self.worker_id)
                if owned is None:
                    raise LeaseLost
                complete_job(session, owned, cohort, grades, result, cross_validation)
            if self.on_version is not None:
                self.on_version()
        except IntegrityError:
            # A version already exists for this job: a previous run finished it.
            logger.warning("job already produced its version", extra={"job": str(job.id)})

    def _fail(self, job_id: uuid.UUID, message: str) -> None:
        self._finish(job_id, JobStatus.failed, message)

    def _finish(self, job_id: uuid.UUID, status: JobStatus, message: str | None) -> None:
        with write_session(self.database) as session:
            owned = job_service.lock_owned_job(session, job_id, self.worker_id)
            if owned is not None:
                job_service.finish_job(
                    owned, status, error=message if status != JobStatus.cancelled else None
                )
        logger.info("job finished", extra={"job": str(job_id), "status": status.value})


# --- running workers -------------------------------------------------------------------


class WorkerPool:
    """In-process workers, started and stopped by the app's lifespan."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        count: int,
        metrics: JobMetrics | None = None,
        delivery_metrics: DeliveryMetrics | None = None,
        on_version: Callable[[], None] | None = None,
    ) -> None:
        self.workers = [
            Worker(database, settings, metrics=metrics, on_version=on_version) for _ in range(count)
        ]
        self.threads = [
            threading.Thread(target=w.run_forever, name=f"gradecast-worker-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        # Webhooks are delivered beside the training threads, never by them.
        self.deliveries = (
            DeliveryLoop(database, settings, self.workers[0].worker_id, delivery_metrics)
            if self.workers
            else None
        )

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        if self.deliveries is not None:
            self.deliveries.start()

    def stop(self, timeout: float = 30.0) -> None:
        for worker in self.workers:
            worker.stopping.set()
        job_service.QUEUED.notify()  # idle workers see `stopping` at once
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.deliveries is not None:
            self.deliveries.stop(max(0.0, deadline - time.monotonic()))


def run_standalone_worker(settings: Settings, threads: int = 1) -> int:
    """``gradecast worker``: waits for the migrations, serves its metrics on
    GRADECAST_METRICS_PORT when set; SIGTERM/SIGINT release the running job for another
    worker."""
    database = open_database(settings)
    registry = CollectorRegistry()
    pool = WorkerPool(
        database, settings, max(1, threads), JobMetrics(registry), DeliveryMetrics(registry)
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        logger.info("stopping worker", extra={"signal": signum})
        stopping.set()
        for worker in pool.workers:
            worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = settings.metrics_port
    stop_metrics_server = serve_registry(registry, port) if port is not None else None
    try:
        # Started beside the API that migrates the database: run no job on an older schema.
        if wait_for_database(database.engine, None, at_head=True, stop=stopping):
            pool.start()
        while any(t.is_alive() for t in pool.threads):
            for thread in pool.threads:
                thread.join(0.5)
    finally:
        pool.stop()
        if stop_metrics_server is not None:
            stop_metrics_server()
        database.engine.dispose()
    return 0
