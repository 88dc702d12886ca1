from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import StateDep
from app.db.migrations import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Process alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


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
