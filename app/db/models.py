"""ORM models. The schema itself comes from the Alembic migrations in alembic/versions."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


class Role(enum.StrEnum):
    admin = "admin"
    trainer = "trainer"
    reader = "reader"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class JobKind(enum.StrEnum):
    training = "training"
    evaluation = "evaluation"


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK on every backend: no native PostgreSQL type to migrate later.
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    # SHA-256 of the key: keys are 256-bit random tokens, so a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Cohort(Base):
    __tablename__ = "cohorts"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    features: Mapped[list[str]] = mapped_column()
    feature_labels: Mapped[list[str]] = mapped_column()
    target: Mapped[str] = mapped_column(String(100))
    target_label: Mapped[str] = mapped_column(String(200))
    grade_min: Mapped[float] = mapped_column(Float)
    grade_max: Mapped[float] = mapped_column(Float)
    n_students: Mapped[int] = mapped_column(Integer)
    has_ids: Mapped[bool] = mapped_column(Boolean)
    stats: Mapped[dict[str, Any]] = mapped_column()
    # The header of the column that gave each pupil a group label (a class), if one did.
    group_column: Mapped[str | None] = mapped_column(String(200))
    # What the upload received, kept, dropped and converted (no pupil data).
    import_report: Mapped[dict[str, Any] | None] = mapped_column()
    # The worker's retention sweep erases the cohort after this moment (None: kept).
    retain_until: Mapped[datetime | None] = mapped_column(default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def grade_range(self) -> tuple[float, float]:
        return (self.grade_min, self.grade_max)


class CohortBlock(Base):
    """Up to ``BLOCK_ROWS`` pupils of a cohort, in upload order, packed column-wise.

    One row per block, not per pupil, so a million pupils load in a few statements: the
    grades as one row-major little-endian float64 (n_rows, features then target) matrix,
    the pupils' positions in the upload as int64, and the ids and group labels as
    newline-joined text (empty when the pupil has no group), all in parallel.
    """

    __tablename__ = "cohort_blocks"

    cohort_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n_rows: Mapped[int] = mapped_column(Integer)
    rows: Mapped[bytes] = mapped_column(LargeBinary)
    grades: Mapped[bytes] = mapped_column(LargeBinary)
    ids: Mapped[str | None] = mapped_column(Text)
    groups: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    cohort_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cohorts.id", ondelete="SET NULL"), index=True
    )
    # training: fits a new version of the model on the cohort; evaluation: evaluates
    # version `model_version` of the model on the cohort (too large to do in the request).
    kind: Mapped[JobKind] = mapped_column(
        _enum(JobKind, "job_kind"), default=JobKind.training, server_default="training"
    )
    model_name: Mapped[str] = mapped_column(String(100))
    # The training options; null (algorithm, activate) or {} (params) for an evaluation.
    algorithm: Mapped[str | None] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column()
    activate: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"))
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    epoch: Mapped[int | None] = mapped_column(Integer)
    current_risk: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    # Sentences about a finished fit that are not failures (e.g. ill-conditioned raw data).
    warnings: Mapped[list[str] | None] = mapped_column()
    # training: the version the job produced; evaluation: the version it evaluates.
    model_version: Mapped[int | None] = mapped_column(Integer)
    # An evaluation job's result once it has succeeded. No foreign key, as for the gate
    # cohort below (model_versions names its job: the two tables would point at each other).
    evaluation_id: Mapped[uuid.UUID | None] = mapped_column()
    # The later cohort the promotion gate evaluates on; no foreign key, so that the job
    # still knows it had a gate once that cohort is erased (and then does not activate).
    gate_cohort_id: Mapped[uuid.UUID | None] = mapped_column()
    # Whether the job's version was activated and why (app.services.activation).
    activation: Mapped[dict[str, Any] | None] = mapped_column()
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class LossChunk(Base):
    """A run of consecutive loss-history points, packed as float64 columns.

    One row per chunk (not per point) so a 500,000-step history is written and read in
    a few statements while the job runs.
    """

    __tablename__ = "loss_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_step: Mapped[int] = mapped_column(Integer)
    n_points: Mapped[int] = mapped_column(Integer)
    # Column-major float64: step, epoch, train_loss, val_loss (NaN if none), grad_norm.
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    active_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column()
    feature_labels: Mapped[list[str]] = mapped_column()
    target: Mapped[str] = mapped_column(String(100))
    grade_min: Mapped[float] = mapped_column(Float)
    grade_max: Mapped[float] = mapped_column(Float)
    # Θ = (w0, w1, …, wp) in the grade units of the features.
    theta: Mapped[list[float]] = mapped_column()
    residual_std: Mapped[float | None] = mapped_column(Float)
    n_train: Mapped[int | None] = mapped_column(Integer)
    # The range of each feature in the training cohort, to flag extrapolation.
    feature_min: Mapped[list[float] | None] = mapped_column()
    feature_max: Mapped[list[float] | None] = mapped_column()
    metrics: Mapped[dict[str, Any] | None] = mapped_column()
    hyperparameters: Mapped[dict[str, Any] | None] = mapped_column()
    # What the OLS prediction interval needs of the training design (engine IntervalDesign
    # as JSON: means, scales, the R factor); None when the version has no such interval.
    interval_design: Mapped[dict[str, Any] | None] = mapped_column()
    warnings: Mapped[list[str] | None] = mapped_column()
    # Whether its training job activated it and why; null for a hand-set version.
    activation: Mapped[dict[str, Any] | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))
    cohort_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cohorts.id", ondelete="SET NULL"), index=True
    )
    cohort_name: Mapped[str | None] = mapped_column(String(200))
    cohort_erased: Mapped[bool] = mapped_column(Boolean, default=False)
    # Pupils erased one by one from the training cohort since this version was trained.
    erased_students: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Unique: a job that runs twice still creates at most one version.
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Activation(Base):
    """Append-only history of the active version of a model."""

    __tablename__ = "activations"
    __table_args__ = {"sqlite_autoincrement": True}

    # An increasing integer: /predict caches learn of any change with one MAX(id) read.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CohortErasure(Base):
    """Append-only record that a cohort's pupils were erased: when, by which key, how many.

    It holds no pupil data. Its increasing id also tells every /predict cache that the
    provenance of some cached versions changed.
    """

    __tablename__ = "cohort_erasures"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    cohort_id: Mapped[uuid.UUID] = mapped_column()
    cohort_name: Mapped[str] = mapped_column(String(200))
    n_students: Mapped[int] = mapped_column(Integer)
    # "cohort": the whole cohort; "student": one pupil's rows (n_students of them here).
    scope: Mapped[str] = mapped_column(String(16), default="cohort", server_default="cohort")
    key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only record of who did what (app/services/audit.py writes it; no route
    updates or deletes one). Never grades, pupils' ids or request bodies."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_organisation_id_id", "organisation_id", "id"),
        {"sqlite_autoincrement": True},
    )

    # Increasing: the cursor of GET /audit.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # No foreign key: the event keeps naming the key whatever becomes of it.
    key_id: Mapped[uuid.UUID | None] = mapped_column()
    key_name: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    object: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    figures: Mapped[dict[str, Any] | None] = mapped_column()


class IdempotentAnswer(Base):
    """The answer a write gave under an Idempotency-Key, stored in the transaction of the
    write itself, replayed to a retry (app/api/idempotency.py)."""

    __tablename__ = "idempotent_answers"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of the method, path, query string, content type and body.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    delivering = "delivering"
    succeeded = "succeeded"
    failed = "failed"


class Webhook(Base):
    """A receiver of an organisation's events, with the secret that signs what it is sent."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column()
    # Kept as given (whsec_ + base64): signing needs the secret itself, not a digest.
    secret: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook, claimed by workers like a job: its id is the
    ``webhook-id`` header of every attempt, its body the exact bytes that are signed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # While delivering: the worker's and until when its claim holds.
    worker_id: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()


class Evaluation(Base):
    """A version's figures on a later cohort (aggregates: they outlive the cohort's erasure;
    only `sample`, the (predicted, actual) pairs, goes with it)."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_model_cohort", "model_id", "cohort_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    # No foreign key: the evaluation keeps naming the cohort after it is erased.
    cohort_id: Mapped[uuid.UUID] = mapped_column()
    cohort_name: Mapped[str] = mapped_column(String(200))
    cohort_erased: Mapped[bool] = mapped_column(Boolean, default=False)
    n: Mapped[int] = mapped_column(Integer)
    rmse: Mapped[float] = mapped_column(Float)
    # mse, mae, r2, mean_error, interval_coverage, extrapolated, by_group, calibration.
    figures: Mapped[dict[str, Any]] = mapped_column()
    sample: Mapped[list[Any] | None] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
