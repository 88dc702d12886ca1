"""Models and their versions: register a Θ (from a job or by hand), promote or roll back.

A version is immutable once created. Which one is active is a pointer on the model,
changed only by ``set_active``, which also appends to the activation history; /predict
caches learn of any change by reading ``MAX(activations.id)``.
"""

import dataclasses
import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, NotFound
from app.db.locks import serialise_activations
from app.db.models import Activation, Model, ModelVersion
from app.db.paging import paginate
from app.engine import IntervalKind
from app.engine import interval_kind as engine_interval_kind
from app.schemas.models import VersionCreate
from app.services import audit
from app.services import webhooks as webhook_service
from app.tables import check_api_names, check_grade_range


@dataclass(frozen=True)
class VersionSpec:
    """What a version holds: Θ and what it was learned from. Immutable once stored."""

    features: list[str]
    feature_labels: list[str]
    target: str
    grade_range: tuple[float, float]
    theta: list[float]
    residual_std: float | None
    n_train: int | None
    source: str  # "job" or "manual"
    feature_min: list[float] | None = None
    feature_max: list[float] | None = None
    metrics: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None
    cohort_id: uuid.UUID | None = None
    cohort_name: str | None = None
    job_id: uuid.UUID | None = None
    # What the 95% interval needs of the training design (engine.IntervalDesign as JSON).
    interval_design: dict[str, Any] | None = None
    warnings: list[str] | None = None


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
    spec: VersionSpec,
    *,
    created_by: uuid.UUID | None,
) -> ModelVersion:
    """Add version ``latest_version + 1`` of the model, creating the model if needed.

    ``interval_design`` is the engine's IntervalDesign as JSON, for the OLS interval.

    Idempotent per job: a job that calls this twice gets its first version back.
    Does not activate it; call ``set_active``.
    """
    if len(spec.theta) != len(spec.features) + 1:
        raise ValueError(f"theta has {len(spec.theta)} values for {len(spec.features)} features")
    model = _get_or_create_locked_model(session, organisation_id, model_name)
    if spec.job_id is not None:
        existing = session.scalars(
            select(ModelVersion).where(ModelVersion.job_id == spec.job_id)
        ).one_or_none()
        if existing is not None:
            return existing
    model.latest_version += 1
    fields = dataclasses.asdict(spec)
    low, high = fields.pop("grade_range")
    version = ModelVersion(
        model_id=model.id,
        version=model.latest_version,
        grade_min=float(low),
        grade_max=float(high),
        cohort_erased=False,
        created_by=created_by,
        **fields,
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        organisation_id,
        "version.created",
        key_id=created_by,
        object=f"/models/{model_name}/versions/{version.version}",
        figures={
            "source": spec.source,
            "features": len(spec.features),
            "job": None if spec.job_id is None else str(spec.job_id),
        },
    )
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
    serialise_activations(session)
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
    previous, model.active_version = model.active_version, version
    audit.record(
        session,
        model.organisation_id,
        "version.activated",
        key_id=key_id,
        object=f"/models/{model.name}/versions/{version}",
        figures={"from": previous, "to": version},
    )
    session.flush()
    webhook_service.enqueue(
        session,
        model.organisation_id,
        "version.activated",
        {"model": model.name, "version": version, "from_version": previous},
    )


def check_manual_version(spec: VersionCreate) -> tuple[float, float]:
    """What the schema cannot say about a hand-set Θ; returns the grade range."""
    check_api_names(spec.features, spec.target, loc=["body"])
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
        VersionSpec(
            features=spec.features,
            feature_labels=spec.feature_labels or spec.features,
            target=spec.target,
            grade_range=grade_range,
            theta=[float(w) for w in spec.theta],
            residual_std=spec.residual_std,
            n_train=spec.n_train,
            source="manual",
        ),
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
) -> tuple[list[Model], int]:
    query = select(Model).where(Model.organisation_id == organisation_id)
    return paginate(session, query, Model.name, limit=limit, offset=offset)


def list_versions(
    session: Session, model: Model, limit: int, offset: int
) -> tuple[list[ModelVersion], int]:
    query = select(ModelVersion).where(ModelVersion.model_id == model.id)
    return paginate(session, query, ModelVersion.version.desc(), limit=limit, offset=offset)


def list_activations(
    session: Session, model: Model, limit: int, offset: int
) -> tuple[list[Activation], int]:
    query = select(Activation).where(Activation.model_id == model.id)
    return paginate(session, query, Activation.id.desc(), limit=limit, offset=offset)
