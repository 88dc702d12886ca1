from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from app.api.deps import Reader, SessionDep, StateDep, Trainer
from app.core.errors import NotFound
from app.db.models import Activation, Model, ModelVersion
from app.schemas.common import error_responses
from app.schemas.models import (
    MODEL_NAME_PATTERN,
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

router = APIRouter(tags=["models"])

ModelName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=MODEL_NAME_PATTERN,
        description="Letters, digits, '.', '_' and '-' (not starting with '.')",
        examples=["concours"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10**9)]


def model_read(model: Model) -> ModelRead:
    return ModelRead(
        name=model.name,
        active_version=model.active_version,
        latest_version=model.latest_version,
        created_at=model.created_at,
    )


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
        source=version.source,
        cohort_id=version.cohort_id,
        cohort_name=version.cohort_name,
        cohort_erased=version.cohort_erased,
        job_id=version.job_id,
        created_at=version.created_at,
    )


def activation_read(activation: Activation) -> ActivationRead:
    return ActivationRead(
        from_version=activation.from_version,
        to_version=activation.to_version,
        created_at=activation.created_at,
        key_id=activation.key_id,
        reason=activation.reason,
    )


def valid_model(name: ModelName, principal: Reader, session: SessionDep) -> Model:
    """Load a model of the caller's organisation, or 404 (also for other organisations')."""
    model = model_service.get_model(session, principal.organisation_id, name)
    if model is None:
        raise NotFound(f"no model named {name!r}", loc=["path", "name"])
    return model


ModelDep = Annotated[Model, Depends(valid_model)]


@router.get("/models", response_model=ModelsRead, responses=error_responses(401, 422))
def list_models(
    principal: Reader, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> ModelsRead:
    models, total = model_service.list_models(session, principal.organisation_id, limit, offset)
    return ModelsRead(data=[model_read(m) for m in models], count=total)


@router.get("/models/{name}", response_model=ModelRead, responses=error_responses(401, 404, 422))
def get_model(model: ModelDep) -> ModelRead:
    return model_read(model)


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
def get_version(
    model: ModelDep, session: SessionDep, version: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> VersionRead:
    found = model_service.get_version(session, model, version)
    if found is None:
        raise NotFound(f"model {model.name!r} has no version {version}", loc=["path", "version"])
    return version_read(model, found)


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
    return model_read(model)


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
    return ActivationsRead(data=[activation_read(a) for a in activations], count=total)
