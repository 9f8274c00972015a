"""undo log and pending prompts: ``undo`` and questions that survive a restart

``undoentry`` keeps, per owner command that changed something, the rows it touched
and their values before, so ``undo`` can reverse the newest one. ``pendingprompt``
holds the one question the bot is waiting on (a ``link`` awaiting ``yes``, a
numbered choice), so the answer still works after a restart.

Revision ID: 0009_undo_log
Revises: 0008_search_names
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the submodule by name, so mypy sees `sqlmodel.sql`
from alembic import op

revision: str = "0009_undo_log"
down_revision: str | None = "0008_search_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "undoentry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("command", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("changes_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("undone_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_undoentry_owner_id", "undoentry", ["owner_id", "id"])
    op.create_table(
        "pendingprompt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("payload_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id"),
    )


def downgrade() -> None:
    op.drop_table("pendingprompt")
    op.drop_index("ix_undoentry_owner_id", table_name="undoentry")
    op.drop_table("undoentry")
