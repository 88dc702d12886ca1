import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from app.api.deps import Limit, ModelDep, Offset, SessionDep, Trainer, VersionDep
from app.api.idempotency import Idempotent, IdempotentRoute
from app.db.models import Evaluation, Model
from app.schemas.common import error_responses
from app.schemas.evaluations import EvaluationCreate, EvaluationRead, EvaluationsRead
from app.services import cards as card_service
from app.services import evaluations as evaluation_service
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
    _idempotency: Idempotent,
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
