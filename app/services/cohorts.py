"""Cohorts: parse (JSON or CSV), validate completely, then store in one transaction."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.db.erasure import erase_freed_pages_after_commit
from app.db.locks import lock_jobs_of_cohort
from app.db.models import Cohort, CohortErasure, Evaluation, ModelVersion
from app.db.paging import paginate
from app.db.students import (
    delete_pupil,
    delete_students,
    insert_students,
    load_matrix,
    page_students,
)
from app.schemas.cohorts import CohortCreate
from app.services import audit
from app.services import webhooks as webhook_service
from app.tables import (
    Columns,
    GradeTable,
    ResolvedMarks,
    SpecialMarks,
    TableError,
    TooManyRowsError,
    check_api_names,
    check_grade_range,
    check_grades,
    column_stats,
    feature_key,
    find_duplicate,
    id_problem,
    load_json_object,
    parse_envelope,
    pseudonymise,
    read_grade_csv,
    resolve_marks,
    students_to_matrix,
)

MAX_FEATURES = 100  # as for a JSON upload (CohortCreate.features)


@dataclass(frozen=True)
class CohortUpload:
    """A validated cohort, ready to store. ``values`` holds the features then the target;
    ``rows`` the kept pupils' positions in the upload (0-based), for error messages."""

    name: str
    features: list[str]
    feature_labels: list[str]
    target: str
    target_label: str
    grade_range: tuple[float, float]
    ids: Sequence[str] | None
    values: np.ndarray
    rows: np.ndarray
    report: dict[str, Any]
    groups: list[str | None] | None = None
    group_column: str | None = None


@dataclass(frozen=True)
class CsvOptions:
    """How to read an export (the query string of a CSV upload)."""

    name: str | None
    target: str | None = None
    grade_range: str | None = None
    id_column: str | None = "id"
    features: list[str] | None = None
    group_column: str | None = None
    special_marks: SpecialMarks = "refuse"


def _too_many(n: int | None, limit: int) -> PayloadTooLarge:
    counted = f"{n} pupils" if n is not None else "more pupils"
    return PayloadTooLarge(
        f"{counted} is over the limit of {limit} per cohort (GRADECAST_MAX_COHORT_ROWS)",
        loc=["body", "students"],
    )


def _check_name(name: str, loc: list[str | int]) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            "name must be 1 to 200 printable characters, e.g. 'promo-2019-2020'", loc=loc
        )
    return name


def parse_json_upload(body: bytes, max_rows: int) -> CohortUpload:
    document = load_json_object(body)
    students = document.get("students")
    if isinstance(students, list) and len(students) > max_rows:
        raise _too_many(len(students), max_rows)
    # The envelope is checked by its schema; the rows column by column below.
    spec = parse_envelope(CohortCreate, {**document, "students": []})
    if not isinstance(students, list):
        raise InvalidInput("students must be a list of objects", loc=["body", "students"])
    name = _check_name(spec.name, ["body", "name"])
    check_api_names(spec.features, spec.target, loc=["body"])
    if spec.group_column is not None and spec.group_column in (*spec.features, spec.target):
        raise InvalidInput(
            f"group_column {spec.group_column!r} is a grade column; a group is a label",
            loc=["body", "group_column"],
        )
    grade_range = check_grade_range(spec.grade_range, loc=["body", "grade_range"])
    columns = [*spec.features, spec.target]
    table = students_to_matrix(
        students, columns, field="students", group_key=spec.group_column, accept_marks=True
    )
    resolved = resolve_marks(
        table.values,
        table.marks,
        special_marks=spec.special_marks,
        grade_range=grade_range,
        labels=columns,
        field="students",
        one_based_rows=False,
    )
    return _kept(
        resolved,
        name=name,
        features=list(spec.features),
        feature_labels=list(spec.features),
        target=spec.target,
        target_label=spec.target,
        grade_range=grade_range,
        ids=table.ids,
        groups=table.groups,
        group_column=spec.group_column,
        ignored=[],
        one_based_rows=False,
    )


def parse_csv_upload(
    data: bytes | bytearray, options: CsvOptions, *, charset: str | None, max_rows: int
) -> CohortUpload:
    if options.name is None:
        raise InvalidInput("the query parameter 'name' is required", loc=["query", "name"])
    name = _check_name(options.name, ["query", "name"])
    grade_range = _parse_range(options.grade_range)
    columns = Columns(
        values=options.features,
        id_column=options.id_column,
        group_column=options.group_column,
        target=options.target,
        with_target=options.features is not None,
    )
    try:
        table = read_grade_csv(data, columns=columns, charset=charset, max_rows=max_rows)
    except TooManyRowsError:
        raise _too_many(None, max_rows) from None
    _check_columns(table, options)
    if options.features is None:
        target_index = _target_index(table.keys, table.headers, options.target)
    else:
        target_index = len(table.keys) - 1
    order = [j for j in range(len(table.keys)) if j != target_index] + [target_index]
    resolved = resolve_marks(
        table.values,
        table.marks,
        special_marks=options.special_marks,
        grade_range=grade_range,
        labels=table.headers,
        field="csv",
        one_based_rows=True,
    )
    return _kept(
        ResolvedMarks(
            # The target is most often last already: no copy of a national cohort's grades.
            resolved.values if order == sorted(order) else resolved.values[:, order],
            resolved.keep,
            resolved.special_marks,
            resolved.rescaled,
        ),
        name=name,
        features=[table.keys[j] for j in order[:-1]],
        feature_labels=[table.headers[j] for j in order[:-1]],
        target=table.keys[target_index],
        target_label=table.headers[target_index],
        grade_range=grade_range,
        ids=table.ids,
        groups=table.groups,
        group_column=table.group_header,
        ignored=table.ignored,
        one_based_rows=True,
    )


def _check_columns(table: GradeTable, options: CsvOptions) -> None:
    if len(table.keys) < 2:
        raise InvalidInput(
            "a cohort needs at least one feature column and the target column", loc=["body"]
        )
    if len(table.keys) > MAX_FEATURES + 1:
        raise InvalidInput(
            f"{len(table.keys)} grade columns: a cohort has at most {MAX_FEATURES} features "
            "and the target",
            loc=["body", "csv"],
        )
    if options.id_column not in (None, "id") and table.ids is None:
        # A named id column that is not there would otherwise be read as a grade column.
        raise InvalidInput(
            f"id_column {options.id_column!r} is not in the header {table.headers}",
            loc=["query", "id_column"],
        )


def _kept(
    resolved: ResolvedMarks,
    *,
    ids: Sequence[str] | None,
    groups: list[str | None] | None,
    ignored: list[str],
    one_based_rows: bool,
    **fields: Any,
) -> CohortUpload:
    """The pupils left once those with an excluded mark are dropped, and the report."""
    rows = np.flatnonzero(resolved.keep)
    dropped = np.flatnonzero(~resolved.keep)
    everyone = len(rows) == resolved.keep.shape[0]
    report = {
        "received": int(resolved.keep.shape[0]),
        "kept": len(rows),
        "dropped": len(dropped),
        "dropped_rows": (dropped + 1 if one_based_rows else dropped).tolist(),
        "special_marks": resolved.special_marks,
        "rescaled": resolved.rescaled,
        "ignored_columns": ignored,
    }
    return CohortUpload(
        ids=ids if ids is None or everyone else [ids[i] for i in rows.tolist()],
        groups=groups if groups is None or everyone else [groups[i] for i in rows.tolist()],
        values=np.ascontiguousarray(resolved.values if everyone else resolved.values[rows]),
        rows=rows,
        report=report,
        **fields,
    )


def _target_index(keys: list[str], headers: list[str], target: str | None) -> int:
    """The target column: the one named (any spelling of its header), else the last."""
    if target is None:
        return len(keys) - 1
    try:
        wanted = feature_key(target)
    except TableError:
        wanted = ""
    if wanted not in keys:
        raise InvalidInput(
            f"target column {target!r} is not in the header {headers}", loc=["query", "target"]
        )
    return keys.index(wanted)


def _parse_range(text: str | None) -> tuple[float, float]:
    if text is None:
        return (0.0, 20.0)
    parts = text.replace(";", ",").split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput(
            "grade_range must be two numbers separated by a comma, e.g. 0,20",
            loc=["query", "grade_range"],
        ) from None
    return check_grade_range(numbers, loc=["query", "grade_range"])


def validate_upload(upload: CohortUpload, *, one_based_rows: bool) -> None:
    """Everything that makes a cohort unusable is refused before anything is stored."""
    field = "csv" if one_based_rows else "students"
    n = upload.values.shape[0]
    if n < 2:
        dropped = upload.report["dropped"]
        left = f" ({dropped} left out for special marks)" if dropped else ""
        raise InvalidInput(f"a cohort needs at least 2 pupils, got {n}{left}", loc=["body", field])
    columns = [*upload.features, upload.target]
    labels = [*upload.feature_labels, upload.target_label] if one_based_rows else columns
    rows = upload.rows  # not as a list: a million Python ints only to name one on an error
    check_grades(
        upload.values,
        labels,
        upload.grade_range,
        field=field,
        one_based_rows=one_based_rows,
        rows=rows,
    )
    if upload.ids is not None:
        duplicate = find_duplicate(upload.ids)
        if duplicate is not None:
            first, second = (int(rows[i - 1]) for i in duplicate[:2])
            if one_based_rows:
                where, row = f"rows {first + 1} and {second + 1}", second + 1
            else:
                where, row = f"students[{first}] and students[{second}]", second
            raise InvalidInput(f"{where} have the same id", loc=["body", field, row, "id"])


def create_cohort(
    session: Session,
    organisation_id: uuid.UUID,
    upload: CohortUpload,
    pepper: bytes | None,
    *,
    key_id: uuid.UUID | None,
    retain_until: datetime | None = None,
) -> Cohort:
    """Store the cohort; with a pepper, its pupils' ids only as pseudonyms. The retention
    sweep erases it after ``retain_until`` (app/services/retention.py)."""
    columns = [*upload.features, upload.target]
    cohort = Cohort(
        organisation_id=organisation_id,
        name=upload.name,
        features=upload.features,
        feature_labels=upload.feature_labels,
        target=upload.target,
        target_label=upload.target_label,
        grade_min=upload.grade_range[0],
        grade_max=upload.grade_range[1],
        n_students=int(upload.values.shape[0]),
        has_ids=upload.ids is not None,
        stats=column_stats(upload.values, columns),
        group_column=upload.group_column,
        import_report=upload.report,
        retain_until=retain_until,
    )
    try:
        with session.begin_nested():
            session.add(cohort)
    except IntegrityError:
        raise Conflict(
            f"a cohort named {upload.name!r} already exists", loc=["body", "name"]
        ) from None
    insert_students(
        session,
        cohort.id,
        upload.rows,
        upload.ids,
        upload.groups,
        upload.values,
        stored_ids=None
        if pepper is None
        else partial(pseudonymise, pepper=pepper, organisation=str(organisation_id)),
    )
    audit.record(
        session,
        organisation_id,
        "cohort.uploaded",
        key_id=key_id,
        object=f"/cohorts/{cohort.id}",
        figures={"pupils": cohort.n_students, "features": len(cohort.features)},
    )
    return cohort


def list_cohorts(
    session: Session, organisation_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Cohort], int]:
    query = select(Cohort).where(Cohort.organisation_id == organisation_id)
    return paginate(session, query, Cohort.created_at.desc(), Cohort.id, limit=limit, offset=offset)


def get_cohort(session: Session, organisation_id: uuid.UUID, cohort_id: uuid.UUID) -> Cohort | None:
    return session.scalars(
        select(Cohort).where(Cohort.id == cohort_id, Cohort.organisation_id == organisation_id)
    ).one_or_none()


def list_students(
    session: Session, cohort: Cohort, limit: int, offset: int
) -> list[tuple[int, str | None, str | None, dict[str, float]]]:
    """(row, id, group, grades by column) of a page of the cohort's pupils, in upload order."""
    columns = [*cohort.features, cohort.target]
    return [
        (row, ident, group, dict(zip(columns, grades.tolist(), strict=True)))
        for row, ident, group, grades in page_students(session, cohort.id, limit, offset)
    ]


def load_grades(session: Session, cohort: Cohort) -> np.ndarray:
    """All the cohort's grades as one (n, p + 1) float64 array, features then target."""
    return load_matrix(session, cohort.id, len(cohort.features) + 1)


@dataclass(frozen=True)
class StudentErasure:
    """Which cohorts lost how many rows when one pupil was erased."""

    cohorts: list[tuple[Cohort, int]]

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.cohorts)


def erase_student(
    session: Session,
    organisation_id: uuid.UUID,
    student_id: str,
    *,
    key_id: uuid.UUID | None,
    pepper: bytes | None,
) -> StudentErasure:
    """Erase one pupil's rows from every cohort of the organisation (GDPR Art. 17), by the
    id the school knows (hashed as uploads are, with the pepper). Each touched cohort gets
    its count and statistics updated and an erasure record; versions trained on it count
    the pupils erased since. 404 when no cohort has that pupil."""
    ident = student_id.strip()
    problem = id_problem(ident)
    if problem is not None:
        raise InvalidInput(f"student_id: {problem}", loc=["path", "student_id"])
    if pepper is not None:
        ident = pseudonymise([ident], pepper, str(organisation_id))[0]
    cohorts = {
        cohort.id: cohort
        for cohort in session.scalars(
            select(Cohort).where(Cohort.organisation_id == organisation_id, Cohort.has_ids)
        )
    }
    counts = delete_pupil(session, list(cohorts), ident) if cohorts else {}
    if not counts:
        raise NotFound(
            "no cohort of this organisation has a pupil with that id", loc=["path", "student_id"]
        )
    touched = sorted(
        ((cohorts[cid], rows) for cid, rows in counts.items()), key=lambda c: c[0].name
    )
    for cohort, rows in touched:
        cohort.n_students -= rows
        grades = load_grades(session, cohort)
        columns = [*cohort.features, cohort.target]
        cohort.stats = column_stats(grades, columns) if len(grades) else {}
        session.add(
            CohortErasure(
                organisation_id=organisation_id,
                cohort_id=cohort.id,
                cohort_name=cohort.name,
                n_students=rows,
                scope="student",
                key_id=key_id,
            )
        )
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.cohort_id == cohort.id)
            .values(erased_students=ModelVersion.erased_students + rows)
        )
        where = f"/cohorts/{cohort.id}"
        figures: dict[str, audit.Figure] = {"rows": rows, "cohort": cohort.name}
        audit.record(
            session, organisation_id, "student.erased", key_id=key_id, object=where, figures=figures
        )
        _forget_evaluation_samples(session, cohort.id, cohort_erased=False)
    erase_freed_pages_after_commit(session)
    return StudentErasure(touched)


def delete_cohort(
    session: Session, cohort: Cohort, key_id: uuid.UUID | None, *, reason: str = "request"
) -> None:
    """Erase the pupils' rows; versions trained on it stay, marked as erased provenance, and
    the erasure itself is recorded (when, which key, how many pupils: no pupil data), in the
    erasure records and the audit trail. ``reason``: "request" or "retention"."""
    lock_jobs_of_cohort(session, cohort.id)
    audit.record(
        session,
        cohort.organisation_id,
        "cohort.erased",
        key_id=key_id,
        object=f"/cohorts/{cohort.id}",
        figures={"pupils": cohort.n_students, "cohort": cohort.name, "reason": reason},
    )
    session.add(
        CohortErasure(
            organisation_id=cohort.organisation_id,
            cohort_id=cohort.id,
            cohort_name=cohort.name,
            n_students=cohort.n_students,
            key_id=key_id,
        )
    )
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.cohort_id == cohort.id)
        .values(cohort_erased=True, cohort_id=None)
    )
    _forget_evaluation_samples(session, cohort.id, cohort_erased=True)
    delete_students(session, cohort.id)
    session.delete(cohort)
    webhook_service.enqueue(
        session,
        cohort.organisation_id,
        "cohort.erased",
        {"cohort_id": str(cohort.id), "n_students": cohort.n_students},
    )
    erase_freed_pages_after_commit(session)


def _forget_evaluation_samples(
    session: Session, cohort_id: uuid.UUID, *, cohort_erased: bool
) -> None:
    """An evaluation's (predicted, actual) pairs are pupils' grades: they go with the cohort,
    or with any pupil erased from it; the aggregates stay."""
    values: dict[str, Any] = {"sample": None}
    if cohort_erased:
        values["cohort_erased"] = True
    session.execute(update(Evaluation).where(Evaluation.cohort_id == cohort_id).values(**values))
