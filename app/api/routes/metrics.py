"""``GET /metrics``: the Prometheus exposition of this instance's registry."""

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client.exposition import choose_encoder

from app.api.deps import StateDep
from app.api.routing import Route
from app.core.errors import Unauthorized

router = APIRouter(tags=["metrics"], route_class=Route)

metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="GRADECAST_METRICS_TOKEN, when it is set: `Authorization: Bearer <token>`",
)


@router.get(
    "/metrics",
    summary="Prometheus metrics (no personal data)",
    response_class=Response,
    # Public unless GRADECAST_METRICS_TOKEN is set: say both in the schema.
    openapi_extra={"security": [{}]},
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: {"description": "GRADECAST_METRICS_TOKEN is set and the token is missing or wrong"},
    },
)
async def metrics(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
) -> Response:
    """Requests and latency by route template, pupils predicted by model and version,
    jobs by status (read from the database now, all organisations), job durations and
    outcomes of this process (of all processes, in multiprocess mode)."""
    expected = state.settings.metrics_token
    if expected is not None:
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise Unauthorized("GET /metrics needs 'Authorization: Bearer <metrics token>'")
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    # The jobs collector reads the database: keep it off the event loop.
    body = await run_in_threadpool(encoder, state.metrics.exposed)
    return Response(body, media_type=content_type)
