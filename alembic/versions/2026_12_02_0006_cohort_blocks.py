"""cohort blocks: pupils stored as packed blocks of rows, not one row each

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:00:00

The pupils of every cohort are carried over from ``cohort_students`` in upload order. The
packing is written out here rather than imported from app.db.students: a migration must
keep meaning what it meant when it ran (it is the layout of revision 0006).
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BLOCK_ROWS = 65_536

_students = sa.table(
    "cohort_students",
    sa.column("cohort_id", sa.Uuid()),
    sa.column("row_index", sa.Integer()),
    sa.column("external_id", sa.String()),
    sa.column("group_label", sa.String()),
    sa.column("grades", sa.LargeBinary()),
)
_blocks = sa.table(
    "cohort_blocks",
    sa.column("cohort_id", sa.Uuid()),
    sa.column("seq", sa.Integer()),
    sa.column("n_rows", sa.Integer()),
    sa.column("rows", sa.LargeBinary()),
    sa.column("grades", sa.LargeBinary()),
    sa.column("ids", sa.Text()),
    sa.column("groups", sa.Text()),
)
_cohorts = sa.table("cohorts", sa.column("id", sa.Uuid()))


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "cohort_blocks",
        sa.Column("cohort_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.Column("grades", sa.LargeBinary(), nullable=False),
        sa.Column("ids", sa.Text(), nullable=True),
        sa.Column("groups", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"],
            ["cohorts.id"],
            name=op.f("fk_cohort_blocks_cohort_id_cohorts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cohort_id", "seq", name=op.f("pk_cohort_blocks")),
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        # Out of line but not compressed: pglz made a 1M-pupil cohort 10x slower to store
        # and to load (0.17 s), for grades that hardly compress.
        op.execute(
            "ALTER TABLE cohort_blocks "
            + ", ".join(
                f"ALTER COLUMN {column} SET STORAGE EXTERNAL"
                for column in ("rows", "grades", "ids", "groups")
            )
        )
    for cohort_id in connection.scalars(sa.select(_cohorts.c.id)).all():
        for seq, chunk in enumerate(_student_chunks(connection, cohort_id)):
            connection.execute(sa.insert(_blocks), [_block(cohort_id, seq, chunk)])
    op.drop_table("cohort_students")


def _student_chunks(connection: sa.Connection, cohort_id: Any) -> Iterator[list[Any]]:
    result = connection.execute(
        sa.select(
            _students.c.row_index,
            _students.c.external_id,
            _students.c.group_label,
            _students.c.grades,
        )
        .where(_students.c.cohort_id == cohort_id)
        .order_by(_students.c.row_index)
    )
    while chunk := result.fetchmany(BLOCK_ROWS):
        yield list(chunk)


def _block(cohort_id: Any, seq: int, chunk: list[Any]) -> dict[str, Any]:
    ids = [r.external_id for r in chunk]
    groups = [r.group_label for r in chunk]
    return {
        "cohort_id": cohort_id,
        "seq": seq,
        "n_rows": len(chunk),
        "rows": b"".join(int(r.row_index).to_bytes(8, "little", signed=True) for r in chunk),
        "grades": b"".join(r.grades for r in chunk),
        "ids": None if all(i is None for i in ids) else "\n".join(i or "" for i in ids),
        "groups": None if all(g is None for g in groups) else "\n".join(g or "" for g in groups),
    }


def downgrade() -> None:
    """Downgrade schema."""
    op.create_table(
        "cohort_students",
        sa.Column("cohort_id", sa.Uuid(), nullable=False),
        sa.Column("row_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("grades", sa.LargeBinary(), nullable=False),
        sa.Column("group_label", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"],
            ["cohorts.id"],
            name=op.f("fk_cohort_students_cohort_id_cohorts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cohort_id", "row_index", name=op.f("pk_cohort_students")),
    )
    connection = op.get_bind()
    keys = connection.execute(sa.select(_blocks.c.cohort_id, _blocks.c.seq)).all()
    for cohort_id, seq in keys:  # one block in memory at a time
        block = connection.execute(
            sa.select(_blocks).where(_blocks.c.cohort_id == cohort_id, _blocks.c.seq == seq)
        ).one()
        width = len(block.grades) // (8 * block.n_rows)
        ids = block.ids.split("\n") if block.ids is not None else [None] * block.n_rows
        groups = block.groups.split("\n") if block.groups is not None else [None] * block.n_rows
        connection.execute(
            sa.insert(_students),
            [
                {
                    "cohort_id": block.cohort_id,
                    "row_index": int.from_bytes(block.rows[8 * i : 8 * i + 8], "little"),
                    "external_id": ids[i],
                    "group_label": groups[i] or None,
                    "grades": block.grades[8 * width * i : 8 * width * (i + 1)],
                }
                for i in range(block.n_rows)
            ],
        )
    op.drop_table("cohort_blocks")
