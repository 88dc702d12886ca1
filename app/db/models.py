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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def grade_range(self) -> tuple[float, float]:
        return (self.grade_min, self.grade_max)


class CohortStudent(Base):
    """One pupil of a cohort: a pseudonymous id and the grades, features then target.

    The grades are packed as little-endian float64 so a million rows load as one array.
    """

    __tablename__ = "cohort_students"

    cohort_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    row_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    external_id: Mapped[str | None] = mapped_column(String(64))
    group_label: Mapped[str | None] = mapped_column(String(50))
    grades: Mapped[bytes] = mapped_column(LargeBinary)


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
    model_name: Mapped[str] = mapped_column(String(100))
    algorithm: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column()
    activate: Mapped[str] = mapped_column(String(16))
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
    model_version: Mapped[int | None] = mapped_column(Integer)
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
