import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response

from app.api.deps import (
    BEARER_SECURITY,
    column_list,
    openapi_query_parameters,
    principal_with_role,
    query_model,
)
from app.api.media import CSV_TYPES, media_type
from app.api.routing import DirectRoute
from app.api.state import AppState, Principal
from app.core.errors import InvalidInput, ServiceError, UnsupportedMediaType
from app.db.models import Role
from app.schemas.common import error_responses
from app.schemas.predict import (
    PredictColumnsRequest,
    PredictQuery,
    PredictRequest,
    PredictResponse,
)
from app.services.answers import answer_csv, answer_json
from app.services.batches import (
    CsvOptions,
    parse_csv_request,
    parse_json_request,
    typed_json_batch,
)

T = TypeVar("T")

# Small requests are answered on the event loop (a thread hop costs more than the work);
# large batches are parsed and computed in the thread pool so they never stall it, a few
# at a time (AppState.big_batches): 16 batches of 10,000 pupils parsed at once took 0.8 GB.
# The limit is a body's size for pupils as objects or CSV (about 3 ms of work at 64 KB);
# callers whose bytes are cheaper to read pass their own (OIP's JSON tensors).
INLINE_BODY_BYTES = 64 * 1024

_EXAMPLE_CSV = "id;Maths;Info;Français\r\nn1;13;14;11\r\nn2;12,5;9;15\r\n"
_EXAMPLE_CSV_ANSWER = (
    "id;Maths;Info;Français;prediction;raw;interval_low;interval_high;extrapolated\r\n"
    "n1;13;14;11;12,54;12,54;;;false\r\nn2;12,5;9;15;12,045;12,045;;;false\r\n"
)

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        PredictRequest.model_json_schema(),
                        PredictColumnsRequest.model_json_schema(),
                    ]
                },
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
                    "columns": {
                        "summary": "Two pupils as columns, the fastest form for big batches",
                        "value": {
                            "model": "concours",
                            "columns": {"maths": [13, 12.5], "info": [14, 9], "francais": [11, 15]},
                            "ids": ["n1", "n2"],
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


async def sized_run(
    state: AppState,
    size: int,
    function: Callable[..., T],
    *args: Any,
    inline_bytes: int = INLINE_BODY_BYTES,
    **kwargs: Any,
) -> T:
    """On the event loop for a body of at most `inline_bytes`; else on one of the few
    threads of ``state.batch_pool`` (few threads, few malloc arenas: the memory of 16
    concurrent 10,000-pupil batches stays that of two), with the request's context (its id
    in logs)."""
    if size <= inline_bytes:
        return function(*args, **kwargs)
    context = contextvars.copy_context()
    call = functools.partial(context.run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(state.batch_pool, call)


@contextlib.asynccontextmanager
async def batch_turn(
    state: AppState, size: int, inline_bytes: int = INLINE_BODY_BYTES
) -> AsyncIterator[None]:
    """A big body waits for one of the few places of big_batches; a small one never waits."""
    if size <= inline_bytes:
        yield
        return
    async with state.big_batches:
        yield


_NO_QUERY = PredictQuery()


def csv_options(query: PredictQuery) -> CsvOptions:
    return CsvOptions(
        id_column=query.id_column or None,
        features=column_list(query.features, "features"),
        special_marks=query.special_marks,
        on_error=query.on_error,
        full=query.fields == "all",
    )


_NO_QUERY_OPTIONS = csv_options(_NO_QUERY)  # a request without a query string: most of them


async def predict(request: Request) -> Response:
    """`raw` is h_Θ(x) = w0 + Σ wj·xj, `prediction` is `raw` clipped into the grade range,
    `interval` a 95% prediction interval, clipped into the grade range, or null for a
    version without σ. `extrapolated`: a grade is outside what the training cohort had.

    JSON in, JSON out. CSV in (header of feature names, any case or accents, an optional
    id column, `,` `;` or tab, decimal commas): the id and feature columns back as sent,
    with `prediction`, `raw`, `interval_low`, `interval_high` and `extrapolated` appended
    (and `status`, `error` with on_error=skip), in the request's dialect; the model and
    version then come from the query string. Needs a reader key."""
    # The key, the query string and the state are read here, not as FastAPI dependencies
    # and parameters: on a 1-pupil request those cost more than the prediction.
    principal = await principal_with_role(request, Role.reader)
    query = query_model(request, PredictQuery, _NO_QUERY)
    options = _NO_QUERY_OPTIONS if query is _NO_QUERY else csv_options(query)
    state: AppState = request.app.state.gradecast
    media, charset = media_type(request)
    body = await request.body()
    if media == "application/json":
        async with batch_turn(state, len(body)):
            return await _predict_json(state, principal, body, options)
    if media in CSV_TYPES:
        if query.model is None:
            raise InvalidInput(
                "a CSV body needs the model in the query string: /predict?model=concours",
                loc=["query", "model"],
            )
        async with batch_turn(state, len(body)):
            return await _predict_csv(
                state, principal, body, options, charset, query.model, query.version
            )
    raise UnsupportedMediaType(
        f"unsupported Content-Type {media or '(none)'!r}; send application/json or text/csv",
        loc=["header", "content-type"],
    )


def add_routes(app: FastAPI) -> None:
    """/predict on the app's own router, ahead of the included ones: an included router's
    routes are matched through FastAPI's include context, some 10 µs a request."""
    app.router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        tags=["predict"],
        response_model=PredictResponse,
        openapi_extra={
            **_REQUEST_BODY,
            "parameters": openapi_query_parameters(PredictQuery),
            "security": BEARER_SECURITY,
        },
        responses=_RESPONSES,
        summary="Predict the exam grade of pupils (JSON or CSV)",
        route_class_override=DirectRoute,
    )


async def _predict_json(
    state: AppState, principal: Principal, body: bytes, options: CsvOptions
) -> Response:
    settings = state.settings
    size, max_rows = len(body), settings.max_predict_rows
    # Big bodies' pupils are read once the version is known, typed by its features.
    parsed = await sized_run(
        state,
        size,
        parse_json_request,
        body,
        max_rows,
        options.on_error,
        typed=size > INLINE_BODY_BYTES,
    )
    typed = parsed.unread
    if not typed:
        state.rate_limits.pupils.take(principal.key_id, parsed.pupils)
    try:
        snapshot = await state.model_cache.resolve(
            state.db,
            settings.model_cache_seconds,
            principal.organisation_id,
            parsed.model,
            parsed.version,
        )
    except ServiceError:
        if typed:  # what is wrong with the body is said first, as for any other body
            await sized_run(state, size, parse_json_request, body, max_rows, options.on_error)
        raise
    batch = None
    if typed:
        batch = await sized_run(state, size, typed_json_batch, snapshot, parsed, max_rows)
        if batch is None:  # not the usual shape: read as always, and told what is wrong
            parsed = await sized_run(
                state, size, parse_json_request, body, max_rows, options.on_error
            )
        pupils = parsed.pupils if batch is None else len(batch.values)
        state.rate_limits.pupils.take(principal.key_id, pupils)
    content, answered = await sized_run(
        state, size, answer_json, snapshot, parsed, full=options.full, batch=batch
    )
    state.count_predictions(principal, snapshot, len(answered.values), len(answered.errors))
    return Response(content, media_type="application/json")


async def _predict_csv(
    state: AppState,
    principal: Principal,
    body: bytes,
    options: CsvOptions,
    charset: str | None,
    model: str,
    version: int | None,
) -> Response:
    settings = state.settings
    table = await sized_run(
        state,
        len(body),
        parse_csv_request,
        body,
        options,
        charset=charset,
        max_rows=settings.max_predict_rows,
    )
    state.rate_limits.pupils.take(principal.key_id, len(table.table.values))
    snapshot = await state.model_cache.resolve(
        state.db,
        settings.model_cache_seconds,
        principal.organisation_id,
        model,
        version,
        source="query",
    )
    content, batch = await sized_run(
        state, len(body), answer_csv, snapshot, table, full=options.full
    )
    state.count_predictions(principal, snapshot, len(batch.values), len(batch.errors))
    return Response(content, media_type="text/csv")
