"""mass drop progress: how many were still missing at the last report, when it closed

Revision ID: 0002_massdrop_progress
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002_massdrop_progress"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("massdrop", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("still_missing", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("closed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("massdrop", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
        batch_op.drop_column("still_missing")
