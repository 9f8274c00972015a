"""lost connections: mass drop progress, profile checksums for cheap refreshes

Revision ID: 0003_lost_connections
Revises: 0002_worker_leases
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the submodule by name, so mypy sees `sqlmodel.sql`
from alembic import op

revision: str = "0003_lost_connections"
down_revision: str | None = "0002_worker_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handle", schema=None) as batch_op:
        batch_op.add_column(sa.Column("profile_hash", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("massdrop", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("still_missing", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("closed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("handle", schema=None) as batch_op:
        batch_op.drop_column("profile_hash")
    with op.batch_alter_table("massdrop", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
        batch_op.drop_column("still_missing")
