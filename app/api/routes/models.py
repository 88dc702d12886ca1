from fastapi import APIRouter, Response, status

from app.api.deps import (
    Limit,
    ModelDep,
    ModelName,
    Offset,
    Reader,
    SessionDep,
    StateDep,
    Trainer,
    VersionDep,
)
from app.api.idempotency import Idempotent, IdempotentRoute
from app.db.models import Model, ModelVersion
from app.schemas.activations import ActivationOutcome
from app.schemas.common import error_responses
from app.schemas.models import (
    ActivationRead,
    ActivationsRead,
    ActivationUpdate,
    Coefficients,
    ModelRead,
    ModelsRead,
    VersionCreate,
    VersionRead,
    VersionsRead,
)
from app.services import models as model_service

router = APIRouter(tags=["models"], route_class=IdempotentRoute)


def version_read(model: Model, version: ModelVersion) -> VersionRead:
    training_range = None
    if version.feature_min is not None and version.feature_max is not None:
        training_range = {
            name: (low, high)
            for name, low, high in zip(
                version.features, version.feature_min, version.feature_max, strict=True
            )
        }
    return VersionRead(
        model=model.name,
        version=version.version,
        active=model.active_version == version.version,
        coefficients=Coefficients(
            intercept=version.theta[0],
            weights=dict(zip(version.features, version.theta[1:], strict=True)),
        ),
        theta=version.theta,
        features=version.features,
        feature_labels=version.feature_labels,
        target=version.target,
        grade_range=(version.grade_min, version.grade_max),
        training_range=training_range,
        metrics=version.metrics,
        hyperparameters=version.hyperparameters,
        residual_std=version.residual_std,
        n_train=version.n_train,
        interval=model_service.interval_kind(version),
        warnings=version.warnings,
        activation=None if version.activation is None else ActivationOutcome(**version.activation),
        source=version.source,
        cohort_id=version.cohort_id,
        cohort_name=version.cohort_name,
        cohort_erased=version.cohort_erased,
        erased_students=version.erased_students,
        job_id=version.job_id,
        created_at=version.created_at,
    )


@router.get("/models", response_model=ModelsRead, responses=error_responses(401, 422))
def list_models(
    principal: Reader, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> ModelsRead:
    models, total = model_service.list_models(session, principal.organisation_id, limit, offset)
    return ModelsRead(data=[ModelRead.model_validate(m) for m in models], count=total)


@router.get("/models/{name}", response_model=ModelRead, responses=error_responses(401, 404, 422))
def get_model(model: ModelDep) -> ModelRead:
    return ModelRead.model_validate(model)


@router.get(
    "/models/{name}/versions",
    response_model=VersionsRead,
    responses=error_responses(401, 404, 422),
)
def list_versions(
    model: ModelDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> VersionsRead:
    """Newest first."""
    versions, total = model_service.list_versions(session, model, limit, offset)
    return VersionsRead(data=[version_read(model, v) for v in versions], count=total)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=VersionRead,
    responses=error_responses(401, 404, 422),
)
def get_version(model: ModelDep, version: VersionDep) -> VersionRead:
    return version_read(model, version)


@router.post(
    "/models/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=VersionRead,
    responses=error_responses(401, 403, 422),
    summary="Register a hand-set Θ as a new version (creates the model if needed)",
)
def create_version(
    name: ModelName,
    spec: VersionCreate,
    principal: Trainer,
    _idempotency: Idempotent,
    state: StateDep,
    session: SessionDep,
    response: Response,
) -> VersionRead:
    """A new version may use other features than the previous ones: /predict always asks
    for the features of the version it uses. `activate: false` on a new model leaves it
    without an active version (/predict answers 409 until one is activated)."""
    model, version = model_service.register_manual_version(
        session, principal.organisation_id, name, spec, key_id=principal.key_id
    )
    if spec.activate:
        state.model_cache.invalidate_after_commit(session)
    response.headers["Location"] = f"/models/{model.name}/versions/{version.version}"
    return version_read(model, version)


@router.put(
    "/models/{name}/active",
    response_model=ModelRead,
    responses=error_responses(401, 403, 404, 422),
    summary="Promote or roll back: make a version the active one",
)
def set_active(
    model: ModelDep,
    update: ActivationUpdate,
    principal: Trainer,
    state: StateDep,
    session: SessionDep,
) -> ModelRead:
    """Recorded in the activation history (no-op if the version is already active)."""
    model_service.set_active(
        session, model, update.version, key_id=principal.key_id, reason=update.reason or ""
    )
    state.model_cache.invalidate_after_commit(session)
    return ModelRead.model_validate(model)


@router.get(
    "/models/{name}/activations",
    response_model=ActivationsRead,
    responses=error_responses(401, 404, 422),
)
def list_activations(
    model: ModelDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> ActivationsRead:
    """Append-only history of the active version, newest first."""
    activations, total = model_service.list_activations(session, model, limit, offset)
    return ActivationsRead(
        data=[ActivationRead.model_validate(a) for a in activations], count=total
    )
