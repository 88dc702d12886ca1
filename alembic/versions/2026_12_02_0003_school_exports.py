"""school exports: group labels, import reports, one pupil's erasure

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('cohorts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_column', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('import_report', sa.JSON(), nullable=True))
    with op.batch_alter_table('cohort_students', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_label', sa.String(length=50), nullable=True))
    with op.batch_alter_table('cohort_erasures', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('scope', sa.String(length=16), server_default='cohort', nullable=False)
        )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('erased_students', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('erased_students')
    with op.batch_alter_table('cohort_erasures', schema=None) as batch_op:
        batch_op.drop_column('scope')
    with op.batch_alter_table('cohort_students', schema=None) as batch_op:
        batch_op.drop_column('group_label')
    with op.batch_alter_table('cohorts', schema=None) as batch_op:
        batch_op.drop_column('import_report')
        batch_op.drop_column('group_column')
