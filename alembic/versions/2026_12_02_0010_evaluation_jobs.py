"""evaluation jobs: a job's kind, an evaluation job's result, no training options for one

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 18:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KIND = sa.Enum(
    "training",
    "evaluation",
    name="job_kind",
    native_enum=False,
    create_constraint=True,
    length=16,
)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # Every job so far trained a version.
        batch_op.add_column(sa.Column("kind", _KIND, server_default="training", nullable=False))
        batch_op.add_column(sa.Column("evaluation_id", sa.Uuid(), nullable=True))
        batch_op.alter_column("algorithm", existing_type=sa.String(length=16), nullable=True)
        batch_op.alter_column("activate", existing_type=sa.String(length=16), nullable=True)


def downgrade() -> None:
    """Downgrade schema: an evaluation job cannot be told as a training job, so it goes."""
    op.execute("DELETE FROM jobs WHERE kind = 'evaluation'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("activate", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("algorithm", existing_type=sa.String(length=16), nullable=False)
        batch_op.drop_column("evaluation_id")
        # SQLite's copy of the table would keep the CHECK on a column it no longer has.
        batch_op.drop_constraint(batch_op.f("ck_jobs_job_kind"), type_="check")
        batch_op.drop_column("kind")
