"""activation records on jobs and versions, and the promotion gate's cohort

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gate_cohort_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("activation", sa.JSON(), nullable=True))
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("activation", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("activation")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("activation")
        batch_op.drop_column("gate_cohort_id")
