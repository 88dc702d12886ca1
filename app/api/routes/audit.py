import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from app.api.deps import Admin, Moment, SessionDep
from app.api.routing import Route
from app.schemas.audit import AuditEventRead, AuditEventsRead
from app.schemas.common import error_responses
from app.services import audit
from app.tables import write_csv

router = APIRouter(tags=["audit"], route_class=Route)

_CSV_COLUMNS = [
    "id",
    "occurred_at",
    "key_id",
    "key_name",
    "action",
    "object",
    "request_id",
    "status",
    "figures",
]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get(
    "/audit",
    response_model=AuditEventsRead,
    responses={
        **error_responses(401, 403, 422),
        200: {
            "description": "The organisation's audit events, oldest first (JSON, or CSV with "
            "format=csv)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
    summary="The audit trail: who did what, when (admin)",
)
def list_audit_events(
    request: Request,
    principal: Admin,
    session: SessionDep,
    since: Annotated[Moment | None, Query(description="From this moment (inclusive)")] = None,
    until: Annotated[Moment | None, Query(description="Before this moment")] = None,
    action: Annotated[
        str | None, Query(max_length=40, pattern=audit.ACTION_PATTERN, examples=["cohort.erased"])
    ] = None,
    key_id: uuid.UUID | None = None,
    object: Annotated[
        str | None,
        Query(max_length=300, description="Exact path, e.g. /cohorts/<id>"),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="The next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Oldest first; the organisation's own events only. No route changes or deletes an
    event: they leave only by GRADECAST_AUDIT_RETENTION_DAYS. /predict is recorded as counts
    per key, model, version and minute, written every few seconds."""
    events, after = audit.list_events(
        session,
        principal.organisation_id,
        audit.EventFilter(_utc(since), _utc(until), action, key_id, object),
        after=None if cursor is None else int(cursor),
        limit=limit,
    )
    rows = [AuditEventRead.model_validate(e) for e in events]
    next_cursor = None if after is None else str(after)
    headers = {}
    if next_cursor is not None:
        following = request.url.include_query_params(cursor=next_cursor)
        headers["Link"] = f'<{following}>; rel="next"'
    if format == "csv":
        plain = [jsonable_encoder(row) for row in rows]
        for row in plain:
            if row["figures"] is not None:
                row["figures"] = audit.figures_text(row["figures"])
        columns = [[row[name] for row in plain] for name in _CSV_COLUMNS]
        return Response(
            write_csv(_CSV_COLUMNS, columns),  # type: ignore[arg-type]
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    body = AuditEventsRead(data=rows, next_cursor=next_cursor)
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
