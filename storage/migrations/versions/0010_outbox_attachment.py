"""outbox attachment: the digest's chart travels with its message

A digest message carried the path of a chart file on the disk of the worker that made
it; a worker on another machine sent the digest without its chart. The PNG is now
stored with the message and written to the delivering worker's own disk.

Revision ID: 0010_outbox_attachment
Revises: 0009_account_credentials
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_outbox_attachment"
down_revision: str | None = "0009_account_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attachment", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.drop_column("attachment")
