"""worker scale: pending messages indexed by id; an account's rate limit remembered

- A claim of due outbox messages walks ids in order; once most messages are sent it
  read past every sent row to find the pending ones (12 ms a claim with 15,000 sent).
  A partial index of the pending messages' ids makes it read only those.
- ``account.rate_limited_until``: a platform said this account's request budget is
  spent until then; no worker polls it before (bot/connected.py).

Revision ID: 0012_worker_scale
Revises: 0011_discord_servers
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the submodule by name, so mypy sees `sqlmodel.sql`
from alembic import op

revision: str = "0012_worker_scale"
down_revision: str | None = "0011_discord_servers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index("ix_outbox_pending_id", "outboxmessage", ["id"], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limited_until",
                                      sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("rate_limited_until")
    op.drop_index("ix_outbox_pending_id", table_name="outboxmessage")
