from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import StateDep
from app.api.routing import DirectRoute, Route
from app.db.migrations import current_revision, head_revision

router = APIRouter(tags=["health"], route_class=Route)


_ALIVE = JSONResponse({"status": "ok"})


async def healthz() -> Response:
    return _ALIVE


def add_routes(app: FastAPI) -> None:
    """/healthz on the app's own router, ahead of the included ones (see predict's), and
    called directly (no dependency to solve, no response model to serialize): it is what a
    load balancer or an orchestrator asks several times a second."""
    app.router.add_api_route(
        "/healthz",
        healthz,
        methods=["GET"],
        tags=["health"],
        summary="Process alive",
        response_model=dict[str, str],
        route_class_override=DirectRoute,
    )


@router.get(
    "/readyz",
    summary="Database reachable and migrated to head",
    responses={
        503: {"description": "Not ready: shutting down, database unreachable or not migrated"}
    },
)
async def readyz(state: StateDep) -> Any:
    if state.drain.started.is_set():
        return JSONResponse({"status": "unavailable", "detail": "shutting down"}, status_code=503)
    head = head_revision()
    try:
        current = await run_in_threadpool(current_revision, state.db.engine)
    except Exception as exc:  # any driver error means "not ready", never a 500
        return JSONResponse(
            {"status": "unavailable", "detail": f"database unreachable ({type(exc).__name__})"},
            status_code=503,
        )
    if current != head:
        return JSONResponse(
            {"status": "unavailable", "detail": f"database at revision {current}, expected {head}"},
            status_code=503,
        )
    return {"status": "ready", "revision": current}
