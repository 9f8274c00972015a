"""profile backlog: a first sync stores profiles now and understands them later

An account's first sync (the quiet baseline) stored every follower understood and
indexed, about 70 µs a person: 70 s for a million followers before the owner heard
anything. It now stores each profile as it came and marks the contact
``profile_pending``; the periodic sweep understands and indexes them in batches,
finding the next ones through a partial index of the pending contacts alone.

Revision ID: 0013_profile_backlog
Revises: 0012_worker_scale
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401 - the models' column types, for autogenerate
from alembic import op

revision: str = "0013_profile_backlog"
down_revision: str | None = "0012_worker_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("contact", sa.Column("profile_pending", sa.Boolean(), nullable=False,
                                       server_default=sa.text("false")))
    op.create_index("ix_contact_profile_pending", "contact", ["owner_id", "id"], unique=False,
                    sqlite_where=sa.text("profile_pending"),
                    postgresql_where=sa.text("profile_pending"))


def downgrade() -> None:
    op.drop_index("ix_contact_profile_pending", table_name="contact")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_column("profile_pending")
