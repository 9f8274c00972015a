"""owner: how they write numeric dates (``settings dates day-first|month-first``)

NULL means "as people in the owner's time zone write them" (handlers/when.py), so
existing owners keep reading dates the way their zone suggests until they choose.

Revision ID: 0009_date_order
Revises: 0009_undo_log
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009_date_order"
down_revision: str | None = "0009_undo_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE (SQLite 3.35+ drops columns itself): a batch copy of ``owner`` would
# drop the table every other table's foreign keys point at.


def upgrade() -> None:
    op.add_column("owner", sa.Column("date_order", sqlmodel.sql.sqltypes.AutoString(length=16),
                                     nullable=True))


def downgrade() -> None:
    op.drop_column("owner", "date_order")
