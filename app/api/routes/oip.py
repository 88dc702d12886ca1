"""Open Inference Protocol v2 endpoints, so that KServe, Triton and MLServer clients call
gradecast as it is: health, model metadata and readiness, inference. The same keys, roles
and organisations as /predict (a reader key; another organisation's model is a 404);
errors carry the protocol's ``error`` beside the service's usual fields."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.api.deps import ModelName, Reader, SessionDep, StateDep, VersionNumber
from app.api.errors import as_service_error, http_error_handler, validation_error_handler
from app.api.routes.health import readyz
from app.api.routes.predict import batch_turn, sized_run
from app.api.routing import Route
from app.api.state import AppState, Principal
from app.core.errors import InvalidInput, NotFound, ServiceError
from app.engine import DegenerateDataError, InvalidConfigError
from app.schemas.common import error_responses
from app.schemas.oip import (
    InferRequest,
    InferResponse,
    Live,
    ModelMetadata,
    ModelReady,
    OipError,
    Ready,
)
from app.services import models as model_service
from app.services import oip
from app.services.predict import VersionSnapshot
from app.tables import TableError

_HANDLED = (
    ServiceError,
    TableError,
    InvalidConfigError,
    DegenerateDataError,
    RequestValidationError,
    HTTPException,
)


async def _oip_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RequestValidationError):
        response = await validation_error_handler(request, exc)
    elif isinstance(exc, HTTPException):
        response = await http_error_handler(request, exc)
    else:
        error = as_service_error(exc)
        response = JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)
    body = orjson.loads(bytes(response.body))
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("content-length", "content-type")
    }
    return JSONResponse({"error": body["detail"], **body}, response.status_code, headers)


class OipRoute(Route):
    """Errors of these routes, from their dependencies too (a 401), in the protocol's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oip_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except _HANDLED as exc:
                return await _oip_error(request, exc)

        return oip_handler


router = APIRouter(prefix="/v2", tags=["open inference protocol v2"], route_class=OipRoute)
_ERRORS = {
    status: {**entry, "model": OipError}
    for status, entry in error_responses(401, 403, 404, 409, 422).items()
}


@router.get("/health/live", response_model=Live, summary="OIP v2: process alive")
async def live() -> Live:
    return Live(live=True)


@router.get(
    "/health/ready",
    response_model=Ready,
    summary="OIP v2: database reachable and migrated (as /readyz)",
    responses={503: {"model": Ready, "description": "Not ready"}},
)
async def ready(state: StateDep) -> Any:
    answer = await readyz(state)
    if isinstance(answer, Response):
        return JSONResponse({"ready": False}, status_code=answer.status_code)
    return Ready(ready=True)


async def _snapshot(
    state: AppState, principal: Principal, name: str, version: int | None
) -> VersionSnapshot:
    return await state.model_cache.resolve(
        state.db,
        state.settings.model_cache_seconds,
        principal.organisation_id,
        name,
        version,
        source="path",
    )


async def _metadata(
    state: AppState, principal: Principal, session: Any, name: str, version: int | None
) -> ModelMetadata:
    snapshot = await _snapshot(state, principal, name, version)
    model = model_service.get_model(session, principal.organisation_id, name)
    if model is None:
        raise NotFound(f"no model named {name!r}", loc=["path", "name"])
    versions = [v.version for v in model_service.list_versions(session, model, 1000, 0)[0]]
    return ModelMetadata.model_validate(oip.model_metadata(snapshot, versions))


_METADATA: dict[str, Any] = {
    "response_model": ModelMetadata,
    "responses": _ERRORS,
    "summary": "OIP v2: the inputs (one per feature, FP64) and outputs of a version",
}


@router.get("/models/{name}", **_METADATA)
async def model_metadata(
    name: ModelName, principal: Reader, state: StateDep, session: SessionDep
) -> ModelMetadata:
    """The active version's inputs and outputs; `versions` lists every version."""
    return await _metadata(state, principal, session, name, None)


@router.get("/models/{name}/versions/{version}", **_METADATA)
async def version_metadata(
    name: ModelName, version: VersionNumber, principal: Reader, state: StateDep, session: SessionDep
) -> ModelMetadata:
    return await _metadata(state, principal, session, name, version)


_READY: dict[str, Any] = {
    "response_model": ModelReady,
    "responses": _ERRORS,
    "summary": "OIP v2: the version can answer (the active one without a version)",
}


@router.get("/models/{name}/ready", **_READY)
async def model_ready(name: ModelName, principal: Reader, state: StateDep) -> ModelReady:
    await _snapshot(state, principal, name, None)
    return ModelReady(name=name, ready=True)


@router.get("/models/{name}/versions/{version}/ready", **_READY)
async def version_ready(
    name: ModelName, version: VersionNumber, principal: Reader, state: StateDep
) -> ModelReady:
    await _snapshot(state, principal, name, version)
    return ModelReady(name=name, ready=True)


HeaderLength = Annotated[
    str | None,
    Header(
        alias="Inference-Header-Content-Length",
        description="Binary tensor data extension: the length of the JSON part of the body",
    ),
]

_INFER: dict[str, Any] = {
    "response_model": InferResponse,
    "responses": {**error_responses(413), **_ERRORS},
    "summary": "OIP v2: predict for a batch of pupils given as one tensor per feature",
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": InferRequest.model_json_schema(),
                    "example": {
                        "inputs": [
                            {"name": "maths", "shape": [2], "datatype": "FP64", "data": [13, 12.5]},
                            {"name": "info", "shape": [2], "datatype": "FP64", "data": [14, 9]},
                            {
                                "name": "francais",
                                "shape": [2],
                                "datatype": "FP64",
                                "data": [11, 15],
                            },
                        ]
                    },
                }
            },
        }
    },
}


# Tensors are read at about 10 µs a kilobyte (10,000 pupils × 3 FP64 as JSON: 180 KB, 2 ms),
# a fifth of what pupils as objects cost: up to this size the event loop reads them itself.
# Measured (bench/predict.py, v2_10k): 3.8 ms of server CPU a request through the batch
# threads, 3.1 ms without the thread hops and GIL hand-offs between them and the loop.
_INLINE_TENSOR_BYTES = 512 * 1024


async def _infer(
    request: Request,
    state: AppState,
    principal: Principal,
    name: str,
    version: int | None,
    header: str | None,
) -> Response:
    length: int | None = None
    if header is not None:
        if not header.strip().isdigit():
            raise InvalidInput(
                "Inference-Header-Content-Length must be a number of bytes",
                loc=["header", "inference-header-content-length"],
            )
        length = int(header)
    body = await request.body()
    snapshot = await _snapshot(state, principal, name, version)
    size = len(body)
    async with batch_turn(state, size, _INLINE_TENSOR_BYTES):
        parsed = await sized_run(
            state,
            size,
            oip.parse_infer,
            body,
            length,
            snapshot,
            state.settings.max_predict_rows,
            inline_bytes=_INLINE_TENSOR_BYTES,
        )
        state.rate_limits.pupils.take(principal.key_id, parsed.values.shape[0])
        content, json_length = await sized_run(
            state, size, oip.infer, snapshot, parsed, inline_bytes=_INLINE_TENSOR_BYTES
        )
    state.count_predictions(principal, snapshot, parsed.values.shape[0])
    if json_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(json_length)},
    )


@router.post("/models/{name}/infer", **_INFER)
async def infer(
    request: Request,
    name: ModelName,
    principal: Reader,
    state: StateDep,
    header: HeaderLength = None,
) -> Response:
    """With the model's active version. Inputs: exactly the version's features, each
    `[n]` (or `[n, 1]`) values, FP64, as JSON `data` or binary (Triton's binary tensor data
    extension). Outputs: `prediction`, `raw`, `extrapolated`, and `interval_low`,
    `interval_high` for a version with an interval; all of them unless `outputs` names some."""
    return await _infer(request, state, principal, name, None, header)


@router.post("/models/{name}/versions/{version}/infer", **_INFER)
async def infer_version(
    request: Request,
    name: ModelName,
    version: VersionNumber,
    principal: Reader,
    state: StateDep,
    header: HeaderLength = None,
) -> Response:
    return await _infer(request, state, principal, name, version, header)
