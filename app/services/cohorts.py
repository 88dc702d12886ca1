"""Cohorts: parse (JSON or CSV), validate completely, then store in one transaction."""

import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Conflict, InvalidInput, PayloadTooLarge
from app.db.erasure import erase_freed_pages_after_commit
from app.db.models import Cohort, CohortErasure, ModelVersion
from app.db.paging import paginate
from app.db.students import delete_students, insert_students, load_matrix, page_students
from app.schemas.cohorts import CohortCreate
from app.tables import (
    TableError,
    TooManyRowsError,
    check_api_names,
    check_grade_range,
    check_grades,
    column_stats,
    feature_key,
    find_duplicate,
    load_json_object,
    parse_envelope,
    read_grade_csv,
    students_to_matrix,
)

MAX_FEATURES = 100  # as for a JSON upload (CohortCreate.features)


@dataclass(frozen=True)
class CohortUpload:
    """A validated cohort, ready to store. ``values`` holds the features then the target."""

    name: str
    features: list[str]
    feature_labels: list[str]
    target: str
    target_label: str
    grade_range: tuple[float, float]
    ids: list[str] | None
    values: np.ndarray


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
    grade_range = check_grade_range(spec.grade_range, loc=["body", "grade_range"])
    ids, values = students_to_matrix(students, [*spec.features, spec.target], field="students")
    return CohortUpload(
        name=name,
        features=list(spec.features),
        feature_labels=list(spec.features),
        target=spec.target,
        target_label=spec.target,
        grade_range=grade_range,
        ids=ids,
        values=values,
    )


def parse_csv_upload(
    data: bytes,
    *,
    name: str | None,
    target: str | None,
    grade_range: str | None,
    id_column: str | None,
    charset: str | None,
    max_rows: int,
) -> CohortUpload:
    if name is None:
        raise InvalidInput("the query parameter 'name' is required", loc=["query", "name"])
    name = _check_name(name, ["query", "name"])
    low_high = _parse_range(grade_range)
    try:
        table = read_grade_csv(data, id_column=id_column, charset=charset, max_rows=max_rows)
    except TooManyRowsError:
        raise _too_many(None, max_rows) from None
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
    if id_column not in (None, "id") and table.ids is None:
        # A named id column that is not there would otherwise be read as a grade column.
        raise InvalidInput(
            f"id_column {id_column!r} is not in the header {table.headers}",
            loc=["query", "id_column"],
        )
    target_index = _target_index(table.keys, table.headers, target)
    order = [j for j in range(len(table.keys)) if j != target_index] + [target_index]
    values = table.values[:, order] if target_index != len(order) - 1 else table.values
    return CohortUpload(
        name=name,
        features=[table.keys[j] for j in order[:-1]],
        feature_labels=[table.headers[j] for j in order[:-1]],
        target=table.keys[target_index],
        target_label=table.headers[target_index],
        grade_range=low_high,
        ids=table.ids,
        values=np.ascontiguousarray(values),
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
        raise InvalidInput(f"a cohort needs at least 2 pupils, got {n}", loc=["body", field])
    columns = [*upload.features, upload.target]
    labels = [*upload.feature_labels, upload.target_label] if one_based_rows else columns
    check_grades(
        upload.values,
        labels,
        upload.grade_range,
        ids=upload.ids,
        field=field,
        one_based_rows=one_based_rows,
    )
    if upload.ids is not None:
        duplicate = find_duplicate(upload.ids)
        if duplicate is not None:
            first, second, ident = duplicate
            if one_based_rows:
                where = f"rows {first} and {second}"
                row = second
            else:
                where = f"students[{first - 1}] and students[{second - 1}]"
                row = second - 1
            raise InvalidInput(
                f"{where} have the same id {ident!r}", loc=["body", field, row, "id"]
            )


def create_cohort(session: Session, organisation_id: uuid.UUID, upload: CohortUpload) -> Cohort:
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
    )
    try:
        with session.begin_nested():
            session.add(cohort)
    except IntegrityError:
        raise Conflict(
            f"a cohort named {upload.name!r} already exists", loc=["body", "name"]
        ) from None
    insert_students(session, cohort.id, upload.ids, upload.values)
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
) -> list[tuple[int, str | None, dict[str, float]]]:
    """(row, id, grades by column) of a page of the cohort's pupils, in upload order."""
    columns = [*cohort.features, cohort.target]
    return [
        (row, ident, dict(zip(columns, grades.tolist(), strict=True)))
        for row, ident, grades in page_students(session, cohort.id, limit, offset)
    ]


def load_grades(session: Session, cohort: Cohort) -> np.ndarray:
    """All the cohort's grades as one (n, p + 1) float64 array, features then target."""
    return load_matrix(session, cohort.id, len(cohort.features) + 1)


def delete_cohort(session: Session, cohort: Cohort, key_id: uuid.UUID | None) -> None:
    """Erase the pupils' rows; versions trained on it stay, marked as erased provenance, and
    the erasure itself is recorded (when, which key, how many pupils: no pupil data)."""
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
    delete_students(session, cohort.id)
    session.delete(cohort)
    erase_freed_pages_after_commit(session)
