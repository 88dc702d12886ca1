import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import Limit, ModelDep, Offset, SessionDep, Trainer, VersionDep
from app.db.models import Evaluation, Model
from app.schemas.common import error_responses
from app.schemas.evaluations import EvaluationCreate, EvaluationRead, EvaluationsRead
from app.services import evaluations as evaluation_service

router = APIRouter(tags=["evaluations"])


def evaluation_read(model: Model, evaluation: Evaluation) -> EvaluationRead:
    return EvaluationRead.model_validate(
        {
            **evaluation.figures,
            "id": evaluation.id,
            "model": model.name,
            "version": evaluation.version,
            "active": model.active_version == evaluation.version,
            "cohort_id": evaluation.cohort_id,
            "cohort_name": evaluation.cohort_name,
            "cohort_erased": evaluation.cohort_erased,
            "n": evaluation.n,
            "rmse": evaluation.rmse,
            "sample": evaluation.sample,
            "created_at": evaluation.created_at,
        }
    )


@router.post(
    "/models/{name}/versions/{version}/evaluations",
    status_code=status.HTTP_201_CREATED,
    response_model=EvaluationRead,
    responses=error_responses(401, 403, 404, 413, 422),
    summary="Evaluate a version on a later cohort (its results in)",
)
def create_evaluation(
    model: ModelDep,
    version: VersionDep,
    body: EvaluationCreate,
    principal: Trainer,
    session: SessionDep,
    response: Response,
) -> EvaluationRead:
    """Computed within the request for cohorts up to 200,000 pupils (a larger one is a 413
    naming the limit). Stored: the figures outlive the cohort's erasure, the sample does not."""
    cohort = evaluation_service.find_cohort(
        session, principal.organisation_id, body.cohort_id, ["body", "cohort_id"]
    )
    evaluation = evaluation_service.create_evaluation(
        session, model, version, cohort, key_id=principal.key_id
    )
    response.headers["Location"] = f"/models/{model.name}/versions/{version.version}/evaluations"
    return evaluation_read(model, evaluation)


@router.get(
    "/models/{name}/versions/{version}/evaluations",
    response_model=EvaluationsRead,
    responses=error_responses(401, 404, 422),
)
def list_version_evaluations(
    model: ModelDep,
    version: VersionDep,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> EvaluationsRead:
    """Newest first."""
    evaluations, total = evaluation_service.list_version_evaluations(
        session, version, limit, offset
    )
    return EvaluationsRead(data=[evaluation_read(model, e) for e in evaluations], count=total)


@router.get(
    "/models/{name}/evaluations",
    response_model=EvaluationsRead,
    responses=error_responses(401, 404, 422),
    summary="The model's versions evaluated on one cohort, best RMSE first",
)
def leaderboard(
    model: ModelDep,
    session: SessionDep,
    cohort_id: Annotated[uuid.UUID, Query(description="The cohort the versions were evaluated on")],
) -> EvaluationsRead:
    """The latest evaluation of each version on the cohort (also after its erasure), with
    `active` marking the model's active version."""
    evaluations = evaluation_service.leaderboard(session, model, cohort_id)
    return EvaluationsRead(
        data=[evaluation_read(model, e) for e in evaluations], count=len(evaluations)
    )
