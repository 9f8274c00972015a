"""discord servers: members of servers connected by chat reach their owners

A Discord member event names only the server, so the gateway holder looks up which
owners connected it (an index on platform and external id), and each owner may name
the channel its welcomes are posted in (``connect discord-server <id> <channel id>``).

Revision ID: 0011_discord_servers
Revises: 0010_outbox_attachment
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the submodule by name, so mypy sees `sqlmodel.sql`
from alembic import op

revision: str = "0011_discord_servers"
down_revision: str | None = "0010_outbox_attachment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("welcome_channel",
                                      sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))
        batch_op.create_index("ix_account_platform_external_id", ["platform", "external_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index("ix_account_platform_external_id")
        batch_op.drop_column("welcome_channel")
