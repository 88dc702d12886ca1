from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.api.deps import Reader, StateDep
from app.api.media import CSV_TYPES, media_type
from app.core.errors import InvalidInput, UnsupportedMediaType
from app.schemas.common import MODEL_NAME_PATTERN, error_responses
from app.schemas.predict import PredictRequest, PredictResponse
from app.services import predict as predict_service

router = APIRouter(tags=["predict"])

T = TypeVar("T")

# Small requests are answered on the event loop (a thread hop costs more than the work);
# large batches are parsed and computed in the thread pool so they never stall it.
_INLINE_BODY_BYTES = 64 * 1024

_EXAMPLE_CSV = "id;Maths;Info;Français\r\nn1;13;14;11\r\nn2;12,5;9;15\r\n"
_EXAMPLE_CSV_ANSWER = (
    "id;Maths;Info;Français;prediction;raw;interval_low;interval_high\r\n"
    "n1;13;14;11;12,54;12,54;;\r\nn2;12,5;9;15;12,045;12,045;;\r\n"
)

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": PredictRequest.model_json_schema(),
                "examples": {
                    "active": {
                        "summary": "The course's new pupil, with the active version",
                        "value": {
                            "model": "concours",
                            "students": [{"id": "n1", "maths": 13, "info": 14, "francais": 11}],
                        },
                    },
                    "pinned": {
                        "summary": "Two pupils, version 3 pinned",
                        "value": {
                            "model": "concours",
                            "version": 3,
                            "students": [
                                {"id": "n1", "maths": 13, "info": 14, "francais": 11},
                                {"id": "n2", "maths": 12.5, "info": 9, "francais": 15},
                            ],
                        },
                    },
                },
            },
            "text/csv": {"schema": {"type": "string"}, "example": _EXAMPLE_CSV},
        },
    }
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One prediction per pupil, in the request's order",
        "content": {"text/csv": {"schema": {"type": "string"}, "example": _EXAMPLE_CSV_ANSWER}},
    },
    **error_responses(401, 403, 404, 409, 413, 415, 422),
}


async def _run(size: int, function: Callable[..., T], *args: Any) -> T:
    if size <= _INLINE_BODY_BYTES:
        return function(*args)
    return await run_in_threadpool(function, *args)


@router.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra=_REQUEST_BODY,
    responses=_RESPONSES,
    summary="Predict the exam grade of pupils (JSON or CSV)",
)
async def predict(
    request: Request,
    principal: Reader,
    state: StateDep,
    model: Annotated[
        str | None,
        Query(max_length=100, pattern=MODEL_NAME_PATTERN, description="CSV only: the model"),
    ] = None,
    version: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="CSV only: pin a version (default: the active)"),
    ] = None,
) -> Response:
    """`raw` is h_Θ(x) = w0 + Σ wj·xj, `prediction` is `raw` clipped into the grade range,
    `interval` a 95% prediction interval raw ± t·σ (Student's t with n_train − p − 1 degrees
    of freedom, 1.96 when unknown), clipped into the grade range, or null for a version
    without σ. `extrapolated`: a grade is outside what the training cohort had.

    JSON in, JSON out. CSV in (header of feature names, any case or accents, an optional
    `id` column, `,` `;` or tab, decimal commas): the same table back with `prediction`,
    `raw`, `interval_low`, `interval_high` appended, in the request's dialect; the model
    and version then come from the query string."""
    media, charset = media_type(request)
    settings = state.settings
    cache = state.model_cache
    body = await request.body()
    organisation_id = principal.organisation_id
    if media == "application/json":
        parsed = await _run(
            len(body), predict_service.parse_json_request, body, settings.max_predict_rows
        )
        snapshot = await cache.resolve(
            state.db, settings.model_cache_seconds, organisation_id, parsed.model, parsed.version
        )
        content = await _run(len(body), predict_service.answer_json, snapshot, parsed.students)
        state.metrics.predicted(snapshot.model, snapshot.version, len(parsed.students))
        return Response(content, media_type="application/json")
    if media in CSV_TYPES:
        if model is None:
            raise InvalidInput(
                "a CSV body needs the model in the query string: /predict?model=concours",
                loc=["query", "model"],
            )
        table = await run_in_threadpool(
            predict_service.parse_csv_request,
            body,
            charset=charset,
            max_rows=settings.max_predict_rows,
        )
        snapshot = await cache.resolve(
            state.db, settings.model_cache_seconds, organisation_id, model, version, source="query"
        )
        content = await _run(len(body), predict_service.answer_csv, snapshot, table)
        state.metrics.predicted(snapshot.model, snapshot.version, len(table.table.values))
        return Response(content, media_type="text/csv")
    raise UnsupportedMediaType(
        f"unsupported Content-Type {media or '(none)'!r}; send application/json or text/csv",
        loc=["header", "content-type"],
    )
