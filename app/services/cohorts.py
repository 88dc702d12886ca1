"""Cohorts: parse (JSON or CSV), validate completely, then store in one transaction."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import Engine, delete, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Conflict, InvalidInput, PayloadTooLarge
from app.db.models import Cohort, CohortErasure, CohortStudent, ModelVersion
from app.schemas.cohorts import FEATURE_PATTERN, CohortCreate
from app.services.grades import check_grade_range, check_grades, column_stats
from app.services.jsonbody import load_json_object
from app.tabular import TableError, TooManyRowsError, feature_key, find_duplicate, read_grade_csv

MAX_ID_LENGTH = 64
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
    # The envelope is checked by its schema; the rows column by column below (a million
    # pupils through pydantic one by one would cost seconds).
    envelope = {k: v for k, v in document.items() if k != "students"}
    envelope["students"] = []
    try:
        spec = CohortCreate.model_validate(envelope)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc: list[str | int] = ["body", *first["loc"]]
        raise InvalidInput(f"{'.'.join(map(str, first['loc']))}: {first['msg']}", loc=loc) from None
    if not isinstance(students, list):
        raise InvalidInput("students must be a list of objects", loc=["body", "students"])

    name = _check_name(spec.name, ["body", "name"])
    for i, feature in enumerate([*spec.features, spec.target]):
        try:
            key = feature_key(feature)
        except TableError:  # no letter or digit at all: nothing to suggest
            key = ""
        if feature != key or feature == "id":
            where: list[str | int] = (
                ["body", "features", i] if i < len(spec.features) else ["body", "target"]
            )
            suggestion = f"must be written {key!r}" if key else "is not an API name"
            raise InvalidInput(
                f"column name {feature!r} {suggestion} "
                f"(lowercase letters, digits and '_', matching {FEATURE_PATTERN}; not 'id')",
                loc=where,
            )
    columns = [*spec.features, spec.target]
    _check_columns(spec.features, spec.target, loc_prefix=["body"])
    grade_range = check_grade_range(spec.grade_range, loc=["body", "grade_range"])
    ids, values = students_to_matrix(students, columns, field="students")
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


def _check_columns(features: Sequence[str], target: str, loc_prefix: list[str | int]) -> None:
    seen: dict[str, int] = {}
    for i, feature in enumerate(features):
        if feature in seen:
            raise InvalidInput(
                f"feature {feature!r} is listed twice", loc=[*loc_prefix, "features", i]
            )
        seen[feature] = i
    if target in seen:
        raise InvalidInput(
            f"the target {target!r} cannot also be a feature", loc=[*loc_prefix, "target"]
        )


def students_to_matrix(
    students: list[Any], columns: Sequence[str], *, field: str
) -> tuple[list[str] | None, np.ndarray]:
    """JSON pupils → (ids, float64 matrix in ``columns`` order); 422 naming pupil and column."""
    expected = set(columns)
    with_id = expected | {"id"}
    has_ids: bool | None = None
    for i, student in enumerate(students):
        if not isinstance(student, dict):
            raise InvalidInput(f"{field}[{i}] must be an object", loc=["body", field, i])
        keys = student.keys()
        if keys != expected and keys != with_id:
            missing = sorted(expected - keys)
            extra = sorted(keys - with_id)
            if missing:
                raise InvalidInput(
                    f"{field}[{i}] has no value for {missing[0]!r}",
                    loc=["body", field, i, missing[0]],
                )
            raise InvalidInput(
                f"{field}[{i}] has an unknown column {extra[0]!r}; expected {sorted(expected)}",
                loc=["body", field, i, extra[0]],
            )
        row_has_id = "id" in keys
        if has_ids is None:
            has_ids = row_has_id
        elif row_has_id != has_ids:
            raise InvalidInput(
                f"{field}[{i}]: either every pupil has an id or none has",
                loc=["body", field, i, "id"],
            )

    n = len(students)
    values = np.empty((n, len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        cells = [s[column] for s in students]
        kinds = set(map(type, cells))
        if not kinds <= {int, float}:
            bad = next(i for i, v in enumerate(cells) if type(v) not in (int, float))
            raise InvalidInput(
                f"{field}[{bad}], column {column!r}: the grade must be a JSON number",
                loc=["body", field, bad, column],
            )
        try:
            values[:, j] = cells
        except OverflowError:
            bad = next(i for i, v in enumerate(cells) if abs(v) > 1e308)
            raise InvalidInput(
                f"{field}[{bad}], column {column!r}: the grade is not a finite number",
                loc=["body", field, bad, column],
            ) from None

    ids: list[str] | None = None
    if has_ids:
        ids = []
        for i, student in enumerate(students):
            raw = student["id"]
            if type(raw) not in (str, int) or isinstance(raw, bool):
                raise InvalidInput(
                    f"{field}[{i}].id must be a string or an integer", loc=["body", field, i, "id"]
                )
            ident = str(raw).strip()
            if not ident or len(ident) > MAX_ID_LENGTH or not ident.isprintable():
                raise InvalidInput(
                    f"{field}[{i}].id must be 1 to {MAX_ID_LENGTH} printable characters",
                    loc=["body", field, i, "id"],
                )
            ids.append(ident)
    return ids, values


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
    except TableError as exc:
        raise csv_error(exc) from None
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
    if target is None:
        target_index = len(table.keys) - 1
    else:
        wanted = feature_key(target) if target.strip() else ""
        if wanted not in table.keys:
            raise InvalidInput(
                f"target column {target!r} is not in the header {table.headers}",
                loc=["query", "target"],
            )
        target_index = table.keys.index(wanted)
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


def csv_error(exc: TableError) -> InvalidInput:
    # The reader's message already names the row and the column.
    loc: list[str | int] = ["body", "csv"]
    if exc.row is not None:
        loc.append(exc.row)
    if exc.column is not None:
        loc.append(exc.column)
    return InvalidInput(f"CSV: {exc.message}", loc=loc)


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
    _insert_students(session, cohort.id, upload)
    return cohort


_INSERT_STUDENTS = {
    # sqlite3
    "qmark": "INSERT INTO cohort_students (cohort_id, row_index, external_id, grades) "
    "VALUES (?, ?, ?, ?)",
    # psycopg
    "pyformat": "INSERT INTO cohort_students (cohort_id, row_index, external_id, grades) "
    "VALUES (%s, %s, %s, %s)",
}


def _insert_students(session: Session, cohort_id: uuid.UUID, upload: CohortUpload) -> None:
    """One executemany of plain tuples on the driver's cursor, in the session's transaction.

    The ORM bulk path builds and re-processes a dict per pupil; for a national cohort that
    is most of the upload's time and memory. Grades are packed in one numpy pass.
    """
    connection = session.connection()
    dialect = connection.dialect
    column = CohortStudent.__table__.c.cohort_id
    sql = _INSERT_STUDENTS.get(dialect.paramstyle)
    if sql is None:  # pragma: no cover - only SQLite and psycopg are supported
        raise RuntimeError(f"unsupported DBAPI paramstyle {dialect.paramstyle!r}")
    # The id as the column type stores it (a 32-hex string on SQLite, a UUID on PostgreSQL).
    process = column.type.bind_processor(dialect)
    bound_id = process(cohort_id) if process is not None else cohort_id
    values = np.ascontiguousarray(upload.values, dtype="<f8")
    n, width = values.shape
    blobs: list[bytes] = values.view(f"V{8 * width}").reshape(n).tolist()
    ids = upload.ids if upload.ids is not None else repeat(None, n)
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, list(zip(repeat(bound_id, n), range(n), ids, blobs, strict=True)))
    finally:
        cursor.close()


def list_cohorts(
    session: Session, organisation_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Cohort], int]:
    query = select(Cohort).where(Cohort.organisation_id == organisation_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(
        query.order_by(Cohort.created_at.desc(), Cohort.id).limit(limit).offset(offset)
    )
    return list(page), total


def get_cohort(session: Session, organisation_id: uuid.UUID, cohort_id: uuid.UUID) -> Cohort | None:
    return session.scalars(
        select(Cohort).where(Cohort.id == cohort_id, Cohort.organisation_id == organisation_id)
    ).one_or_none()


def list_students(
    session: Session, cohort: Cohort, limit: int, offset: int
) -> list[tuple[int, str | None, np.ndarray]]:
    # row_index runs 0..n-1, so the offset is a key range, not a scan.
    rows = session.execute(
        select(CohortStudent.row_index, CohortStudent.external_id, CohortStudent.grades)
        .where(CohortStudent.cohort_id == cohort.id, CohortStudent.row_index >= offset)
        .order_by(CohortStudent.row_index)
        .limit(limit)
    )
    return [(r, ident, np.frombuffer(blob, dtype="<f8")) for r, ident, blob in rows]


def load_matrix(session: Session, cohort: Cohort) -> np.ndarray:
    """All the cohort's grades as one (n, p + 1) float64 array, features then target."""
    blobs = session.scalars(
        select(CohortStudent.grades)
        .where(CohortStudent.cohort_id == cohort.id)
        .order_by(CohortStudent.row_index)
    ).all()
    width = len(cohort.features) + 1
    return np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), width)


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
    session.execute(delete(CohortStudent).where(CohortStudent.cohort_id == cohort.id))
    session.delete(cohort)
    engine = session.get_bind()
    if isinstance(engine, Engine) and engine.dialect.name == "sqlite":
        event.listen(session, "after_commit", lambda _s: _erase_wal(engine), once=True)


def _erase_wal(engine: Engine) -> None:
    """secure_delete zeroes the freed rows, but in WAL mode the zeroed pages are new frames
    appended to the -wal file: the earlier frames, with the pupils' rows, stay there (and a
    later checkpoint only copies the zeroed pages into the database file). A TRUNCATE
    checkpoint writes the zeroed pages back and empties the WAL, so the erased rows are in
    neither file. It waits for readers (busy timeout), which are short."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()
