"""drop the contact and handle indexes on owner_id alone: longer ones start with it

``ix_contact_owner_id`` and ``ix_handle_owner_id`` index nothing the composite indexes
beginning with ``owner_id`` do not (``ix_contact_owner_lower_name``;
``uq_handle_identity`` and ``ix_handle_owner_handle``): any query by owner uses those
as well, and every write paid for two more B-trees. An account's first sync of a
million followers builds each of them again (0.25 s and 0.32 s of its ~31 s).

Revision ID: 0015_redundant_owner_indexes
Revises: 0014_accounts_per_platform
"""

from collections.abc import Sequence

import sqlmodel.sql.sqltypes  # noqa: F401 - the models' column types, for autogenerate
from alembic import op

revision: str = "0015_redundant_owner_indexes"
down_revision: str | None = "0014_accounts_per_platform"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_contact_owner_id", table_name="contact")
    op.drop_index("ix_handle_owner_id", table_name="handle")


def downgrade() -> None:
    op.create_index("ix_handle_owner_id", "handle", ["owner_id"], unique=False)
    op.create_index("ix_contact_owner_id", "contact", ["owner_id"], unique=False)
