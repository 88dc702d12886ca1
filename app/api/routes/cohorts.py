from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.deps import (
    CohortDep,
    Limit,
    Moment,
    Offset,
    Reader,
    SessionDep,
    StateDep,
    Trainer,
    column_list,
)
from app.api.idempotency import Idempotent, IdempotentRoute
from app.api.media import CSV_TYPES, media_type, read_body
from app.core.errors import InvalidInput, UnsupportedMediaType
from app.db.models import Cohort
from app.schemas.cohorts import (
    SPECIAL_MARKS_DESCRIPTION,
    CohortCreate,
    CohortRead,
    CohortsRead,
    ErasedCohort,
    StudentErasureRead,
    StudentRead,
    StudentsRead,
)
from app.schemas.common import error_responses
from app.services import cohorts as cohort_service
from app.services import quotas, retention
from app.services.cohorts import CohortUpload, CsvOptions
from app.tables import ID_PATTERN, SpecialMarks

router = APIRouter(tags=["cohorts"], route_class=IdempotentRoute)


_EXAMPLE_CSV = (
    "id;maths;info;francais;concours\r\ne1;12;15;9;14\r\ne2;5;9;12;7\r\ne3;13;12;13;12\r\n"
)

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": CohortCreate.model_json_schema()},
            "text/csv": {
                "schema": {"type": "string"},
                "example": _EXAMPLE_CSV,
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def csv_options(
    name: Annotated[str | None, Query(max_length=200, description="CSV: the cohort's name")] = None,
    target: Annotated[
        str | None,
        Query(max_length=200, description="CSV: the target column (default: the last one)"),
    ] = None,
    grade_range: Annotated[
        str | None, Query(max_length=100, description="CSV: low,high (default 0,20)")
    ] = None,
    id_column: Annotated[
        str, Query(max_length=200, description="CSV: the pupils' id column, e.g. INE")
    ] = "id",
    features: Annotated[
        str | None,
        Query(
            max_length=400,
            description="CSV: the feature columns, comma-separated headers or API names "
            "(e.g. Maths,Info,Français). Every other column but id_column, target and "
            "group_column (Nom, Prénom…) is ignored: not stored, not echoed. Default: every "
            "column but those.",
        ),
    ] = None,
    group_column: Annotated[
        str | None,
        Query(
            max_length=100,
            description="CSV: a column of short group labels (Classe, Division; at most 50 "
            "characters), kept per pupil for breakdowns; not a feature",
        ),
    ] = None,
    special_marks: Annotated[SpecialMarks, Query(description=SPECIAL_MARKS_DESCRIPTION)] = "refuse",
) -> CsvOptions:
    """The query string of a CSV upload (a JSON upload carries the same in its body)."""
    chosen = column_list(features, "features")
    return CsvOptions(
        name=name,
        target=target,
        grade_range=grade_range,
        id_column=id_column or None,
        features=chosen,
        group_column=group_column or None,
        special_marks=special_marks,
    )


@router.post(
    "/cohorts",
    status_code=status.HTTP_201_CREATED,
    response_model=CohortRead,
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(401, 403, 409, 413, 415, 422),
    summary="Upload a past cohort (JSON, CSV, or a multipart CSV file)",
)
async def upload_cohort(
    request: Request,
    response: Response,
    principal: Trainer,
    _idempotency: Idempotent,
    state: StateDep,
    session: SessionDep,
    options: Annotated[CsvOptions, Depends(csv_options)],
    retain_until: Annotated[
        Moment | None,
        Query(
            description="When the retention sweep erases this cohort (ISO 8601, UTC if no "
            "offset; in the future). Default: GRADECAST_COHORT_RETENTION_DAYS after the "
            "upload, or kept until deleted when that is unset"
        ),
    ] = None,
) -> CohortRead:
    """JSON: a `CohortCreate` object. CSV (`text/csv` body or multipart field `file`): a header
    row, an optional id column, `,` `;` or tab separators, decimal commas, UTF-8 (BOM or not)
    or the `charset` of the Content-Type; the query string says how to read it. Nothing is
    stored unless every kept row is valid; `import_report` says what was kept and why."""
    deadline = retention.retain_until(retain_until, state.settings.cohort_retention_days)
    parse, is_json = await _upload_parser(request, options, state.settings.max_cohort_rows)

    def parse_validate_store() -> Cohort:
        # Parsing a national cohort takes CPU time: off the event loop.
        upload = parse()
        cohort_service.validate_upload(upload, one_based_rows=not is_json)
        quotas.check_cohort_quota(
            session, principal.organisation_id, int(upload.values.shape[0]), state.settings
        )
        return cohort_service.create_cohort(
            session,
            principal.organisation_id,
            upload,
            state.settings.pepper,
            key_id=principal.key_id,
            retain_until=deadline,
        )

    cohort = await run_in_threadpool(parse_validate_store)
    response.headers["Location"] = f"/cohorts/{cohort.id}"
    return CohortRead.model_validate(cohort)


async def _upload_parser(
    request: Request, options: CsvOptions, max_rows: int
) -> tuple[Callable[[], CohortUpload], bool]:
    """The body read, and how to parse it by its Content-Type; whether it is JSON."""
    media, charset = media_type(request)
    if media == "application/json":
        return partial(cohort_service.parse_json_upload, await request.body(), max_rows), True
    if media in CSV_TYPES or media == "multipart/form-data":
        body: bytes | bytearray
        if media == "multipart/form-data":
            body, charset = await _multipart_file(request)
        else:
            body = await read_body(request)
        parse = partial(
            cohort_service.parse_csv_upload, body, options, charset=charset, max_rows=max_rows
        )
        return parse, False
    raise UnsupportedMediaType(
        f"unsupported Content-Type {media or '(none)'!r}; send application/json, "
        "text/csv or multipart/form-data",
        loc=["header", "content-type"],
    )


async def _multipart_file(request: Request) -> tuple[bytes, str | None]:
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(
                "the multipart body needs a file field named 'file'", loc=["body", "file"]
            )
        data = await upload.read()
        content_type = upload.content_type or ""
    charset = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip('"')
    return data, charset


@router.get("/cohorts", response_model=CohortsRead, responses=error_responses(401, 422))
def list_cohorts(
    principal: Reader,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> CohortsRead:
    cohorts, total = cohort_service.list_cohorts(session, principal.organisation_id, limit, offset)
    return CohortsRead(data=[CohortRead.model_validate(c) for c in cohorts], count=total)


@router.get(
    "/cohorts/{cohort_id}", response_model=CohortRead, responses=error_responses(401, 404, 422)
)
def get_cohort(cohort: CohortDep) -> CohortRead:
    return CohortRead.model_validate(cohort)


@router.get(
    "/cohorts/{cohort_id}/students",
    response_model=StudentsRead,
    responses=error_responses(401, 403, 404, 422),
)
def list_students(
    cohort: CohortDep,
    principal: Trainer,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StudentsRead:
    """The pupils' rows, in upload order (trainer or admin: this is personal data)."""
    rows = cohort_service.list_students(session, cohort, limit, offset)
    return StudentsRead(
        data=[
            StudentRead(row=r, id=ident, group=group, grades=grades)
            for r, ident, group, grades in rows
        ],
        count=cohort.n_students,
    )


@router.delete(
    "/cohorts/{cohort_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_cohort(
    cohort: CohortDep, principal: Trainer, session: SessionDep, state: StateDep
) -> Response:
    """Erase the cohort and every pupil row of it. Model versions trained on it are kept
    (they hold no pupil data) and marked as trained on an erased cohort; the erasure is
    recorded (when, by which key, how many pupils)."""
    cohort_service.delete_cohort(session, cohort, principal.key_id)
    state.model_cache.invalidate_after_commit(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/students/{student_id}",
    response_model=StudentErasureRead,
    responses=error_responses(401, 403, 404, 422),
    summary="Erase one pupil from every cohort of the organisation",
)
def erase_student(
    student_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=64,
            pattern=ID_PATTERN,
            description="The id the school knows (INE or other); with GRADECAST_ID_PEPPER it "
            "is hashed as uploads are",
        ),
    ],
    principal: Trainer,
    session: SessionDep,
    state: StateDep,
) -> StudentErasureRead:
    """GDPR Art. 17 for one person: the pupil's rows go from every cohort of the
    organisation, those cohorts' counts and statistics are updated, each erasure is recorded
    (no pupil data), and versions trained on a touched cohort count it in
    `erased_students`. 404 when no cohort has that pupil (also when erased already)."""
    erasure = cohort_service.erase_student(
        session,
        principal.organisation_id,
        student_id,
        key_id=principal.key_id,
        pepper=state.settings.pepper,
    )
    state.model_cache.invalidate_after_commit(session)
    return StudentErasureRead(
        rows_erased=erasure.rows,
        cohorts=[
            ErasedCohort(id=cohort.id, name=cohort.name, rows_erased=rows)
            for cohort, rows in erasure.cohorts
        ],
    )


__all__ = ["CohortCreate", "router"]
