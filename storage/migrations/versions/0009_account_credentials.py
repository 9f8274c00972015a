"""account credentials: accounts connected by chat keep their encrypted credentials

``connect mastodon|bluesky|x`` stores each owner's platform credentials on their
account row as one Fernet token (``PLNBOT_SECRET_KEY``); ``platformapp`` keeps the
bot's own application per Mastodon instance, registered once and shared.

Revision ID: 0009_account_credentials
Revises: 0009_date_order
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the submodule by name, so mypy sees `sqlmodel.sql`
from alembic import op

revision: str = "0009_account_credentials"
down_revision: str | None = "0009_date_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credentials", sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=True))
        batch_op.add_column(sa.Column("connected_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column("next_poll_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column("last_polled_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
        batch_op.create_index(batch_op.f("ix_account_next_poll_at"), ["next_poll_at"],
                              unique=False)
    op.create_table(
        "platformapp",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("instance", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("credentials", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "instance", name="uq_platformapp_instance"),
    )


def downgrade() -> None:
    op.drop_table("platformapp")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_next_poll_at"))
        batch_op.drop_column("last_polled_at")
        batch_op.drop_column("next_poll_at")
        batch_op.drop_column("connected_at")
        batch_op.drop_column("credentials")
