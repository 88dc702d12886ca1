"""The pupils' rows of cohorts: bulk insert at driver speed, load as one array, page, erase.

Grades are stored per pupil as packed little-endian float64 (features then target), so a
cohort loads as one array with one ``frombuffer``.
"""

import uuid
from collections.abc import Sequence
from itertools import repeat

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.models import CohortStudent

_INSERT = (
    "INSERT INTO cohort_students (cohort_id, row_index, external_id, group_label, grades) VALUES "
)
_PLACEHOLDERS = {
    "qmark": "(?, ?, ?, ?, ?)",  # sqlite3
    "pyformat": "(%s, %s, %s, %s, %s)",  # psycopg
}


def insert_students(
    session: Session,
    cohort_id: uuid.UUID,
    rows: np.ndarray,
    ids: list[str] | None,
    groups: list[str | None] | None,
    values: np.ndarray,
) -> None:
    """One executemany of plain tuples on the driver's cursor, in the session's transaction;
    `rows` are the pupils' positions in the upload.

    The ORM bulk path builds and re-processes a dict per pupil; for a national cohort that
    is most of the upload's time and memory. Grades are packed in one numpy pass.
    """
    connection = session.connection()
    dialect = connection.dialect
    placeholders = _PLACEHOLDERS.get(dialect.paramstyle)
    if placeholders is None:  # pragma: no cover - only SQLite and psycopg are supported
        raise RuntimeError(f"unsupported DBAPI paramstyle {dialect.paramstyle!r}")
    # The id as the column type stores it (a 32-hex string on SQLite, a UUID on PostgreSQL).
    process = CohortStudent.__table__.c.cohort_id.type.bind_processor(dialect)
    bound_id = process(cohort_id) if process is not None else cohort_id
    packed = np.ascontiguousarray(values, dtype="<f8")
    n, width = packed.shape
    blobs: list[bytes] = packed.view(f"V{8 * width}").reshape(n).tolist()
    external_ids = ids if ids is not None else repeat(None, n)
    labels = groups if groups is not None else repeat(None, n)
    records = list(
        zip(repeat(bound_id, n), rows.tolist(), external_ids, labels, blobs, strict=True)
    )
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(_INSERT + placeholders, records)
    finally:
        cursor.close()


def load_matrix(session: Session, cohort_id: uuid.UUID, width: int) -> np.ndarray:
    """All the cohort's grades as one (n, width) float64 array, in upload order."""
    blobs = session.scalars(
        select(CohortStudent.grades)
        .where(CohortStudent.cohort_id == cohort_id)
        .order_by(CohortStudent.row_index)
    ).all()
    return np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), width)


def page_students(
    session: Session, cohort_id: uuid.UUID, limit: int, offset: int
) -> list[tuple[int, str | None, str | None, np.ndarray]]:
    """(row, id, group, grades) of a page of the pupils, in upload order; `row` is the
    pupil's position in the upload (pupils erased one by one leave gaps)."""
    rows = session.execute(
        select(
            CohortStudent.row_index,
            CohortStudent.external_id,
            CohortStudent.group_label,
            CohortStudent.grades,
        )
        .where(CohortStudent.cohort_id == cohort_id)
        .order_by(CohortStudent.row_index)
        .limit(limit)
        .offset(offset)
    )
    return [(r, ident, group, np.frombuffer(blob, dtype="<f8")) for r, ident, group, blob in rows]


def load_groups(session: Session, cohort_id: uuid.UUID) -> list[str | None]:
    """Every pupil's group label, in upload order (as `load_matrix`)."""
    return list(
        session.scalars(
            select(CohortStudent.group_label)
            .where(CohortStudent.cohort_id == cohort_id)
            .order_by(CohortStudent.row_index)
        )
    )


def delete_students(session: Session, cohort_id: uuid.UUID) -> None:
    session.execute(delete(CohortStudent).where(CohortStudent.cohort_id == cohort_id))


def delete_pupil(
    session: Session, cohort_ids: Sequence[uuid.UUID], external_id: str
) -> dict[uuid.UUID, int]:
    """Erase the rows of the pupil with this id from these cohorts; rows erased per cohort."""
    erased = session.execute(
        delete(CohortStudent)
        .where(CohortStudent.cohort_id.in_(cohort_ids), CohortStudent.external_id == external_id)
        .returning(CohortStudent.cohort_id)
    ).scalars()
    counts: dict[uuid.UUID, int] = {}
    for cohort_id in erased:
        counts[cohort_id] = counts.get(cohort_id, 0) + 1
    return counts
