import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import (
    EvaluationDep,
    Limit,
    ModelDep,
    Offset,
    SessionDep,
    StateDep,
    Trainer,
    VersionDep,
)
from app.api.idempotency import Idempotent, IdempotentRoute
from app.db.models import Evaluation, Model
from app.schemas.common import error_responses
from app.schemas.evaluations import (
    EvaluationCreate,
    EvaluationRead,
    EvaluationsRead,
    evaluation_location,
)
from app.schemas.jobs import JobRead
from app.services import cards as card_service
from app.services import evaluations as evaluation_service
from app.services import jobs as job_service
from app.services import quotas
from app.services.cards import CardFormat

router = APIRouter(tags=["evaluations"], route_class=IdempotentRoute)


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


_LOC_COHORT: list[str | int] = ["body", "cohort_id"]


@router.post(
    "/models/{name}/versions/{version}/evaluations",
    status_code=status.HTTP_201_CREATED,
    response_model=EvaluationRead,
    responses={
        202: {
            "model": JobRead,
            "description": "The cohort is above GRADECAST_SYNC_EVALUATION_LIMIT pupils: an "
            "evaluation job was queued (the body is the job, `Location` is /jobs/{id}); "
            "once it has succeeded, its `evaluation_url` is the evaluation",
        },
        **error_responses(401, 403, 404, 422, 429),
    },
    summary="Evaluate a version on a later cohort (its results in)",
)
def create_evaluation(
    model: ModelDep,
    version: VersionDep,
    body: EvaluationCreate,
    principal: Trainer,
    _idempotency: Idempotent,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> EvaluationRead | Response:
    """Computed within the request (201, `Location`: the evaluation) for cohorts up to
    GRADECAST_SYNC_EVALUATION_LIMIT pupils (200,000 by default). Above it the evaluation is
    a job (202, `Location`: /jobs/{id}), checked first as here (nothing is queued for a bad
    request) and counted in GRADECAST_MAX_ACTIVE_JOBS (429 when full); a worker computes
    the same figures and stores them as this route does. Stored: the figures outlive the
    cohort's erasure, the sample does not."""
    cohort = evaluation_service.find_cohort(
        session, principal.organisation_id, body.cohort_id, _LOC_COHORT
    )
    evaluation_service.check_evaluable(version, cohort, _LOC_COHORT)
    if evaluation_service.runs_in_request(cohort, state.settings):
        evaluation = evaluation_service.create_evaluation(
            session, model, version, cohort, key_id=principal.key_id
        )
        response.headers["Location"] = evaluation_location(
            model.name, version.version, evaluation.id
        )
        return evaluation_read(model, evaluation)
    quotas.check_job_quota(session, principal.organisation_id, state.settings)
    job = evaluation_service.queue_evaluation(session, model, version, cohort, principal.key_id)
    job_service.QUEUED.notify_after_commit(session)
    return JSONResponse(
        job_service.job_read(job).model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/jobs/{job.id}"},
    )


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
    "/models/{name}/versions/{version}/evaluations/{evaluation_id}",
    response_model=EvaluationRead,
    responses=error_responses(401, 404, 422),
    summary="One stored evaluation (a 201's Location, an evaluation job's evaluation_url)",
)
def get_evaluation(model: ModelDep, evaluation: EvaluationDep) -> EvaluationRead:
    return evaluation_read(model, evaluation)


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


_CARD_CONTENT = {
    "text/markdown": {"schema": {"type": "string"}},
    "text/html": {"schema": {"type": "string"}},
}


@router.get(
    "/models/{name}/versions/{version}/card",
    response_class=Response,
    responses={
        200: {"content": _CARD_CONTENT, "description": "The model card"},
        **error_responses(401, 404, 422),
    },
    summary="The version's model card (Markdown or printable HTML, French or English)",
)
def model_card(
    model: ModelDep,
    version: VersionDep,
    session: SessionDep,
    format: Annotated[CardFormat | None, Query(description="Overrides the Accept header")] = None,
    accept: Annotated[str | None, Header()] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> Response:
    """Intended use, training data, method, metrics (every evaluation too), errors by
    group, limitations and activation history; figures as the API gives them. French when
    Accept-Language prefers `fr`, else English; HTML for `Accept: text/html`, else Markdown."""
    form = card_service.preferred_format(format, accept)
    language = card_service.preferred_language(accept_language)
    text = card_service.render_card(session, model, version, language, form)
    media = "text/html" if form == "html" else "text/markdown"
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Vary": "Accept, Accept-Language", "Content-Language": language},
    )
