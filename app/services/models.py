"""Models and their versions: register a Θ (from a job or by hand), promote or roll back.

A version is immutable once created. Which one is active is a pointer on the model,
changed only by ``set_active``, which also appends to the activation history; /predict
caches learn of any change by reading ``MAX(activations.id)``.
"""

import math
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, NotFound
from app.db.models import Activation, Model, ModelVersion
from app.engine import IntervalKind
from app.engine import interval_kind as engine_interval_kind
from app.schemas.models import VersionCreate
from app.services.grades import check_grade_range
from app.tabular import TableError, feature_key

# Any constant: one transaction-scoped lock that serialises activations on PostgreSQL, so
# activation ids become visible in increasing order (see set_active).
_ACTIVATION_LOCK = 0x67726164


def get_model(session: Session, organisation_id: uuid.UUID, name: str) -> Model | None:
    return session.scalars(
        select(Model).where(Model.organisation_id == organisation_id, Model.name == name)
    ).one_or_none()


def get_version(session: Session, model: Model, version: int) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    ).one_or_none()


def _get_or_create_locked_model(session: Session, organisation_id: uuid.UUID, name: str) -> Model:
    """The model row, locked until commit (FOR UPDATE is a no-op on SQLite, whose writers
    are already serialised by BEGIN IMMEDIATE)."""
    query = (
        select(Model)
        .where(Model.organisation_id == organisation_id, Model.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    model = session.scalars(query).one_or_none()
    if model is not None:
        return model
    try:
        with session.begin_nested():
            session.add(Model(organisation_id=organisation_id, name=name, latest_version=0))
    except IntegrityError:  # created by a concurrent transaction: use theirs
        pass
    return session.scalars(query).one()


def create_version(
    session: Session,
    organisation_id: uuid.UUID,
    model_name: str,
    *,
    features: list[str],
    feature_labels: list[str],
    target: str,
    grade_range: tuple[float, float],
    theta: list[float],
    residual_std: float | None,
    n_train: int | None,
    feature_min: list[float] | None,
    feature_max: list[float] | None,
    metrics: dict[str, Any] | None,
    hyperparameters: dict[str, Any] | None,
    source: str,
    cohort_id: uuid.UUID | None,
    cohort_name: str | None,
    job_id: uuid.UUID | None,
    created_by: uuid.UUID | None,
    interval_design: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> ModelVersion:
    """Add version ``latest_version + 1`` of the model, creating the model if needed.

    ``interval_design`` is the engine's IntervalDesign as JSON, for the OLS interval.

    Idempotent per job: a job that calls this twice gets its first version back.
    Does not activate it; call ``set_active``.
    """
    if len(theta) != len(features) + 1:
        raise ValueError(f"theta has {len(theta)} values for {len(features)} features")
    model = _get_or_create_locked_model(session, organisation_id, model_name)
    if job_id is not None:
        existing = session.scalars(
            select(ModelVersion).where(ModelVersion.job_id == job_id)
        ).one_or_none()
        if existing is not None:
            return existing
    model.latest_version += 1
    version = ModelVersion(
        model_id=model.id,
        version=model.latest_version,
        features=list(features),
        feature_labels=list(feature_labels),
        target=target,
        grade_min=float(grade_range[0]),
        grade_max=float(grade_range[1]),
        theta=[float(w) for w in theta],
        residual_std=residual_std,
        n_train=n_train,
        feature_min=feature_min,
        feature_max=feature_max,
        metrics=metrics,
        hyperparameters=hyperparameters,
        interval_design=interval_design,
        warnings=warnings,
        source=source,
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        cohort_erased=False,
        job_id=job_id,
        created_by=created_by,
    )
    session.add(version)
    session.flush()
    return version


def interval_kind(version: ModelVersion) -> IntervalKind | None:
    """What /predict's interval is for this version (see VersionRead.interval)."""
    return engine_interval_kind(version.interval_design, version.residual_std)


def set_active(
    session: Session, model: Model, version: int, *, key_id: uuid.UUID | None, reason: str
) -> None:
    """Make ``version`` the active one and record it in the history; no-op if it already is."""
    # The model row first, then the activation lock: create_version holds the model row
    # when a job activates its version, so the other order would deadlock with it.
    session.refresh(model, with_for_update=True)
    if session.get_bind().dialect.name == "postgresql":
        # Activation ids come from a sequence: without this, a transaction holding id 7 could
        # commit after one holding id 8, and a cache that saw MAX(id) = 8 would miss it.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATION_LOCK})
    if model.active_version == version:
        return
    if get_version(session, model, version) is None:
        raise NotFound(f"model {model.name!r} has no version {version}", loc=["body", "version"])
    session.add(
        Activation(
            model_id=model.id,
            from_version=model.active_version,
            to_version=version,
            key_id=key_id,
            reason=reason[:200],
        )
    )
    model.active_version = version
    session.flush()


def check_manual_version(spec: VersionCreate) -> tuple[float, float]:
    """What the schema cannot say about a hand-set Θ; returns the grade range."""
    names = [*spec.features, spec.target]
    for i, name in enumerate(names):
        try:
            key = feature_key(name)
        except TableError:
            key = ""
        if name != key or name == "id":
            loc: list[str | int] = (
                ["body", "features", i]
                if i < len(spec.features)
                else [
                    "body",
                    "target",
                ]
            )
            suggestion = f" (write it {key!r})" if key and key != "id" else ""
            raise InvalidInput(
                f"{name!r} is not an API column name: lowercase letters, digits and '_', "
                f"not 'id'{suggestion}",
                loc=loc,
            )
    first_seen: dict[str, int] = {}
    for i, name in enumerate(spec.features):
        if name in first_seen:
            raise InvalidInput(f"feature {name!r} is listed twice", loc=["body", "features", i])
        first_seen[name] = i
    if spec.target in first_seen:
        raise InvalidInput(
            f"the target {spec.target!r} cannot also be a feature", loc=["body", "target"]
        )
    if len(spec.theta) != len(spec.features) + 1:
        raise InvalidInput(
            f"theta needs {len(spec.features) + 1} values (w0, then one weight per feature), "
            f"got {len(spec.theta)}",
            loc=["body", "theta"],
        )
    if spec.feature_labels is not None and len(spec.feature_labels) != len(spec.features):
        raise InvalidInput(
            "feature_labels needs one label per feature", loc=["body", "feature_labels"]
        )
    if not all(math.isfinite(w) for w in spec.theta):
        raise InvalidInput("theta must hold finite numbers", loc=["body", "theta"])
    return check_grade_range(spec.grade_range, loc=["body", "grade_range"])


def register_manual_version(
    session: Session,
    organisation_id: uuid.UUID,
    model_name: str,
    spec: VersionCreate,
    *,
    key_id: uuid.UUID,
) -> tuple[Model, ModelVersion]:
    grade_range = check_manual_version(spec)
    version = create_version(
        session,
        organisation_id,
        model_name,
        features=spec.features,
        feature_labels=spec.feature_labels or spec.features,
        target=spec.target,
        grade_range=grade_range,
        theta=spec.theta,
        residual_std=spec.residual_std,
        n_train=spec.n_train,
        feature_min=None,
        feature_max=None,
        metrics=None,
        hyperparameters=None,
        source="manual",
        cohort_id=None,
        cohort_name=None,
        job_id=None,
        created_by=key_id,
    )
    model = session.get_one(Model, version.model_id)
    if spec.activate:
        set_active(
            session,
            model,
            version.version,
            key_id=key_id,
            reason=spec.reason or "registered by hand with activate=true",
        )
    return model, version


def list_models(
    session: Session, organisation_id: uuid.UUID, limit: int, offset: int
) -> tuple[Sequence[Model], int]:
    where = Model.organisation_id == organisation_id
    total = session.scalar(select(func.count()).select_from(Model).where(where)) or 0
    page = session.scalars(
        select(Model).where(where).order_by(Model.name).limit(limit).offset(offset)
    )
    return page.all(), total


def list_versions(
    session: Session, model: Model, limit: int, offset: int
) -> tuple[Sequence[ModelVersion], int]:
    where = ModelVersion.model_id == model.id
    total = session.scalar(select(func.count()).select_from(ModelVersion).where(where)) or 0
    page = session.scalars(
        select(ModelVersion)
        .where(where)
        .order_by(ModelVersion.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return page.all(), total


def list_activations(
    session: Session, model: Model, limit: int, offset: int
) -> tuple[Sequence[Activation], int]:
    where = Activation.model_id == model.id
    total = session.scalar(select(func.count()).select_from(Activation).where(where)) or 0
    page = session.scalars(
        select(Activation).where(where).order_by(Activation.id.desc()).limit(limit).offset(offset)
    )
    return page.all(), total
