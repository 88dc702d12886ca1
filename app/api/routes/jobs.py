import itertools
import time
import uuid
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import (
    JobDep,
    Limit,
    Offset,
    Reader,
    SessionDep,
    StateDep,
    Trainer,
    valid_job,
)
from app.api.idempotency import Idempotent, IdempotentRoute
from app.api.state import AppState, Principal
from app.core.errors import NotFound
from app.db.models import JobStatus
from app.schemas.common import error_responses
from app.schemas.jobs import JobCreate, JobRead, JobsRead, JobStatusName, LossHistory
from app.services import audit, quotas
from app.services import jobs as job_service
from app.services import training as training_service
from app.services.cohorts import get_cohort
from app.tables import write_csv

router = APIRouter(tags=["jobs"], route_class=IdempotentRoute)


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=error_responses(401, 403, 404, 422, 429),
    summary="Queue a training job",
)
def create_job(
    body: JobCreate,
    principal: Trainer,
    _idempotency: Idempotent,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> JobRead:
    """Records the job and returns at once; a worker trains it in the background. Poll
    `GET /jobs/{id}` (the `Location` header) for progress and the resulting model version."""
    cohort = get_cohort(session, principal.organisation_id, body.cohort_id)
    if cohort is None:
        raise NotFound("no such cohort", loc=["body", "cohort_id"])
    quotas.check_job_quota(session, principal.organisation_id, state.settings)
    job = training_service.create_job(
        session, principal.organisation_id, body, cohort, principal.key_id
    )
    audit.record(
        session,
        principal.organisation_id,
        "job.queued",
        key_id=principal.key_id,
        object=f"/jobs/{job.id}",
        figures={"model": job.model_name, "algorithm": job.algorithm, "cohort": str(cohort.id)},
    )
    job_service.QUEUED.notify_after_commit(session)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_service.job_read(job)


@router.get("/jobs", response_model=JobsRead, responses=error_responses(401, 422))
def list_jobs(
    principal: Reader,
    session: SessionDep,
    status_filter: Annotated[JobStatusName | None, Query(alias="status")] = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobsRead:
    jobs, total = job_service.list_jobs(
        session,
        principal.organisation_id,
        status=JobStatus(status_filter) if status_filter else None,
        model=model,
        limit=limit,
        offset=offset,
    )
    return JobsRead(data=[job_service.job_read(j) for j in jobs], count=total)


# The longest GET /jobs/{id}?wait= holds a request: below the idle timeout of common
# proxies (60 s for nginx and most load balancers).
MAX_WAIT_SECONDS = 30.0
_ENDED = frozenset(ended.value for ended in job_service.FINISHED)


@router.get("/jobs/{job_id}", response_model=JobRead, responses=error_responses(401, 404, 422))
async def get_job(
    job_id: uuid.UUID,
    request: Request,
    principal: Reader,
    state: StateDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Seconds to wait for the job to end: the answer comes as soon as it "
            "has succeeded, failed or been cancelled, or after this long (at most "
            "GRADECAST_JOB_WAIT_SECONDS) with the job as it is then. One request instead of a "
            "polling loop; 0 (the default) answers at once. A client that hangs up ends "
            "its wait.",
        ),
    ] = 0,
) -> JobRead:
    """The job: its status, progress and, once it succeeded, its version and metrics."""
    deadline = time.monotonic() + min(wait, state.settings.job_wait_seconds)
    while True:
        seen = job_service.ENDED.generation
        job = await run_in_threadpool(_read_job, state, principal, job_id)
        remaining = deadline - time.monotonic()
        if job.status in _ENDED or remaining <= 0 or state.drain.started.is_set():
            return job
        if await request.is_disconnected():  # nobody to answer: no more reads for it
            return job
        # Woken when a job of this process ends; a worker in another process is seen at
        # the next read, POLL_SECONDS later at most.
        await job_service.ENDED.wait_async(seen, min(remaining, job_service.POLL_SECONDS))


def _read_job(state: AppState, principal: Principal, job_id: uuid.UUID) -> JobRead:
    with state.db.reads() as session:
        return job_service.job_read(valid_job(job_id, principal, session))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobRead,
    responses=error_responses(401, 403, 404, 409, 422),
)
def cancel_job(principal: Trainer, job: JobDep, session: SessionDep) -> JobRead:
    """A queued job is cancelled at once; a running one stops within a second."""
    job_service.cancel_job(session, job)
    job_service.ENDED.notify_after_commit(session)
    audit.record(
        session,
        principal.organisation_id,
        "job.cancelled",
        key_id=principal.key_id,
        object=f"/jobs/{job.id}",
        status=job.status.value,
    )
    return job_service.job_read(job)


F64_MEDIA_TYPE = "application/octet-stream"


@router.get(
    "/jobs/{job_id}/loss",
    response_model=LossHistory,
    responses={
        **error_responses(401, 404, 422),
        200: {
            "description": "The loss history: JSON; CSV with format=csv (or Accept: text/csv); "
            "with format=f64, packed little-endian float64 columns one after the other "
            "(n values each, n = X-Loss-Points), named in order by X-Loss-Columns, for a "
            "chart to read with one Float64Array per column",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                F64_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        },
    },
)
def get_loss(
    job: JobDep,
    request: Request,
    session: SessionDep,
    max_points: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
    format: Annotated[Literal["json", "csv", "f64"] | None, Query()] = None,
) -> Response:
    """The full empirical risk recorded during training (also while the job runs), thinned
    evenly to `max_points` keeping the first and the last point. A long history (500,000
    SGD steps) reads fastest as `f64` (40 bytes a point), then `csv`; JSON is for
    thinned ones."""
    table = job_service.loss_table(session, job.id, max_points)
    header = ["step", "epoch", "train_loss"]
    columns: list[np.ndarray] = [table.step, table.epoch, table.train_loss]
    if table.val_loss is not None:
        header.append("val_loss")
        columns.append(table.val_loss)
    header.append("grad_norm")
    columns.append(table.grad_norm)
    if format == "f64":
        packed = np.concatenate([c.astype("<f8", copy=False) for c in columns]).tobytes()
        return Response(
            packed,
            media_type=F64_MEDIA_TYPE,
            headers={
                "X-Loss-Columns": ",".join(header),
                "X-Loss-Points": str(len(table.step)),
                "X-Loss-Total-Points": str(table.total_points),
            },
        )
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    n = len(table.step)
    pieces = range(0, n, LOSS_PIECE_POINTS)
    if wants_csv:
        media = "text/csv; charset=utf-8"
        if n <= LOSS_PIECE_POINTS:
            return Response(write_csv(header, list(columns)), media_type=media)
        csv_pieces = (
            write_csv(
                header,
                [c[start : start + LOSS_PIECE_POINTS] for c in columns],
                header_row=start == 0,
            )
            for start in pieces
        )
        return StreamingResponse(csv_pieces, media_type=media)
    head = {"job_id": str(job.id), "total_points": table.total_points}
    if n <= LOSS_PIECE_POINTS:
        body = orjson.dumps({**head, "points": _loss_points(table, 0, n)})
        return Response(body, media_type="application/json")
    # The same text as one orjson.dumps of the whole body, a piece of points at a time.
    opening = orjson.dumps(head)[:-1] + b',"points":['
    json_pieces = (
        (b"," if start else opening)
        + orjson.dumps(_loss_points(table, start, start + LOSS_PIECE_POINTS))[1:-1]
        for start in pieces
    )
    return StreamingResponse(itertools.chain(json_pieces, [b"]}"]), media_type="application/json")


# A longer history is answered as a stream of pieces of this many points, each written
# when the previous one is sent: the memory of a piece (a few MB), not of the whole (a
# 500,001-point history as JSON: 52 MB of text from some 200 MB of Python objects).
LOSS_PIECE_POINTS = 20_000


def _loss_points(table: job_service.LossTable, start: int, stop: int) -> list[dict[str, Any]]:
    """The JSON points of rows [start, stop) of the history."""
    rows = slice(start, stop)
    step = table.step[rows].tolist()
    val = table.val_loss[rows].tolist() if table.val_loss is not None else [None] * len(step)
    return [
        {"step": s, "epoch": e, "train_loss": t, "val_loss": v, "grad_norm": g}
        for s, e, t, v, g in zip(
            step,
            table.epoch[rows].tolist(),
            table.train_loss[rows].tolist(),
            val,
            table.grad_norm[rows].tolist(),
            strict=True,
        )
    ]
