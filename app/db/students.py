"""The pupils of cohorts, stored as blocks of rows: insert, load as one array, page, erase.

A cohort is a few rows of ``cohort_blocks`` (``BLOCK_ROWS`` pupils each, in upload order),
not one row per pupil: its grades are a packed little-endian float64 matrix (features then
target), the pupils' positions in the upload an int64 array, their ids and group labels
newline-joined text, side by side. A million pupils load with some twenty reads and one
copy each; erasing one pupil rewrites the one block that holds them.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.db.models import CohortBlock
from app.tables.ids import SEPARATOR, PackedIds

# 2 MB of grades for 4 columns: few statements per cohort, small rewrites on an erasure.
BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class Block:
    """One block, unpacked: positions in the upload, grades (k, width), ids and groups."""

    rows: np.ndarray
    grades: np.ndarray
    ids: Sequence[str] | None
    groups: Sequence[str | None] | None


def pack_block(
    cohort_id: uuid.UUID, seq: int, block: Block
) -> dict[str, uuid.UUID | int | bytes | str | None]:
    """The ``cohort_blocks`` row of a block (the one place that says how a block is packed)."""
    return {
        "cohort_id": cohort_id,
        "seq": seq,
        "n_rows": int(block.rows.shape[0]),
        "rows": np.ascontiguousarray(block.rows, dtype="<i8").tobytes(),
        "grades": np.ascontiguousarray(block.grades, dtype="<f8").tobytes(),
        "ids": _id_text(block.ids),
        "groups": None
        if block.groups is None
        else SEPARATOR.join(g if g is not None else "" for g in block.groups),
    }


def _id_text(ids: Sequence[str] | None) -> str | None:
    """Ids and group labels hold no control character (app.tables.ids): SEPARATOR-joined,
    which packed ids already are."""
    if ids is None:
        return None
    return ids.text if isinstance(ids, PackedIds) else SEPARATOR.join(ids)


def unpack_block(
    n_rows: int, rows: bytes, grades: bytes, ids: str | None, groups: str | None
) -> Block:
    return Block(
        rows=np.frombuffer(rows, dtype="<i8"),
        grades=np.frombuffer(grades, dtype="<f8").reshape(n_rows, -1),
        ids=None if ids is None else ids.split(SEPARATOR),
        groups=None if groups is None else [g or None for g in groups.split(SEPARATOR)],
    )


def insert_students(
    session: Session,
    cohort_id: uuid.UUID,
    rows: np.ndarray,
    ids: Sequence[str] | None,
    groups: Sequence[str | None] | None,
    values: np.ndarray,
    *,
    stored_ids: Callable[[Sequence[str]], Sequence[str]] | None = None,
) -> None:
    """Store the pupils as blocks, in the session's transaction; `rows` are the pupils'
    positions in the upload, `values` their grades (features then target), and a block's
    ids are stored as `stored_ids` makes them (pseudonyms), or as given. A block is made,
    packed and sent at a time: a million pupils never sit in memory twice."""
    for seq, start in enumerate(range(0, values.shape[0], BLOCK_ROWS)):
        end = start + BLOCK_ROWS
        block = Block(
            rows=rows[start:end],
            grades=values[start:end],
            ids=_block_ids(ids, start, end, stored_ids),
            groups=None if groups is None else groups[start:end],
        )
        session.execute(insert(CohortBlock), pack_block(cohort_id, seq, block))


def _block_ids(
    ids: Sequence[str] | None,
    start: int,
    end: int,
    stored_ids: Callable[[Sequence[str]], Sequence[str]] | None,
) -> Sequence[str] | None:
    if ids is None:
        return None
    return ids[start:end] if stored_ids is None else stored_ids(ids[start:end])


def load_matrix(session: Session, cohort_id: uuid.UUID, width: int) -> np.ndarray:
    """All the cohort's grades as one (n, width) float64 array, in upload order."""
    blocks = _grade_blocks(session, cohort_id)
    matrix = np.empty((sum(n for n, _ in blocks), width), dtype=np.float64)
    start = 0
    for n, grades in blocks:
        matrix[start : start + n] = np.frombuffer(grades, dtype="<f8").reshape(n, width)
        start += n
    return matrix


def _grade_blocks(session: Session, cohort_id: uuid.UUID) -> Sequence[tuple[int, bytes]]:
    """(n_rows, grades) of every block, in order. On PostgreSQL in psycopg's binary format:
    as text, bytea comes hex-encoded, twice its size, and decoding it was most of a load."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [
            (n, grades)
            for n, grades in session.execute(
                select(CohortBlock.n_rows, CohortBlock.grades)
                .where(CohortBlock.cohort_id == cohort_id)
                .order_by(CohortBlock.seq)
            )
        ]
    driver = connection.connection.driver_connection
    with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "SELECT n_rows, grades FROM cohort_blocks WHERE cohort_id = %s ORDER BY seq",
            (cohort_id,),
        )
        return [(n, bytes(grades)) for n, grades in cursor.fetchall()]


def load_groups(session: Session, cohort_id: uuid.UUID) -> list[str | None]:
    """Every pupil's group label, in upload order (as `load_matrix`)."""
    labels: list[str | None] = []
    for n, groups in session.execute(
        select(CohortBlock.n_rows, CohortBlock.groups)
        .where(CohortBlock.cohort_id == cohort_id)
        .order_by(CohortBlock.seq)
    ):
        labels.extend([g or None for g in groups.split(SEPARATOR)] if groups else [None] * n)
    return labels


def page_students(
    session: Session, cohort_id: uuid.UUID, limit: int, offset: int
) -> list[tuple[int, str | None, str | None, np.ndarray]]:
    """(row, id, group, grades) of a page of the pupils, in upload order; `row` is the
    pupil's position in the upload (pupils erased one by one leave gaps). Only the blocks
    the page overlaps are read."""
    sizes = session.execute(
        select(CohortBlock.seq, CohortBlock.n_rows)
        .where(CohortBlock.cohort_id == cohort_id)
        .order_by(CohortBlock.seq)
    ).all()
    wanted: dict[int, int] = {}  # seq -> position of the block's first pupil
    start = 0
    for seq, n in sizes:
        if start + n > offset and start < offset + limit:
            wanted[seq] = start
        start += n
    if not wanted or limit <= 0:
        return []
    page: list[tuple[int, str | None, str | None, np.ndarray]] = []
    for seq, n, rows, grades, ids, groups in session.execute(
        select(
            CohortBlock.seq,
            CohortBlock.n_rows,
            CohortBlock.rows,
            CohortBlock.grades,
            CohortBlock.ids,
            CohortBlock.groups,
        )
        .where(CohortBlock.cohort_id == cohort_id, CohortBlock.seq.in_(wanted))
        .order_by(CohortBlock.seq)
    ):
        block = unpack_block(n, rows, grades, ids, groups)
        first = max(0, offset - wanted[seq])
        last = min(n, offset + limit - wanted[seq])
        page.extend(
            (
                int(block.rows[i]),
                block.ids[i] if block.ids is not None else None,
                block.groups[i] if block.groups is not None else None,
                block.grades[i],
            )
            for i in range(first, last)
        )
    return page


def delete_students(session: Session, cohort_id: uuid.UUID) -> None:
    session.execute(delete(CohortBlock).where(CohortBlock.cohort_id == cohort_id))


def delete_pupil(
    session: Session, cohort_ids: Sequence[uuid.UUID], external_id: str
) -> dict[uuid.UUID, int]:
    """Erase the rows of the pupil with this id from these cohorts; rows erased per cohort.

    Each block that holds the pupil is rewritten without them (or deleted when it held no
    one else): the old block's bytes are freed, and zeroed by SQLite's secure_delete. The
    database narrows the search to the blocks whose ids contain the text; the exact match
    is made here. The blocks are locked first, so that two erasures cannot lose either.
    """
    found = session.scalars(
        select(CohortBlock)
        .where(
            CohortBlock.cohort_id.in_(cohort_ids),
            CohortBlock.ids.contains(external_id, autoescape=True),
        )
        .order_by(CohortBlock.cohort_id, CohortBlock.seq)
        .with_for_update()
    ).all()
    counts: dict[uuid.UUID, int] = {}
    for stored in found:
        block = unpack_block(stored.n_rows, stored.rows, stored.grades, stored.ids, stored.groups)
        assert block.ids is not None  # the query matched its ids
        keep = np.array([ident != external_id for ident in block.ids], dtype=bool)
        erased = int(keep.size - np.count_nonzero(keep))
        if not erased:
            continue
        counts[stored.cohort_id] = counts.get(stored.cohort_id, 0) + erased
        if not keep.any():
            session.delete(stored)
            continue
        kept = pack_block(
            stored.cohort_id,
            stored.seq,
            Block(
                rows=block.rows[keep],
                grades=block.grades[keep],
                ids=[ident for ident, k in zip(block.ids, keep.tolist(), strict=True) if k],
                groups=None
                if block.groups is None
                else [g for g, k in zip(block.groups, keep.tolist(), strict=True) if k],
            ),
        )
        for name in ("n_rows", "rows", "grades", "ids", "groups"):
            setattr(stored, name, kept[name])
    session.flush()
    return counts
