"""indexes for the per-arrival look-ups: look-alike names and recent draft texts

Every new connection checks for contacts with the same full name and for a recent
draft with the same text; without these indexes both scanned the owner's whole
network, so arrivals got slower as the network grew.

Revision ID: 0005_arrival_lookups
Revises: 0004_contact_search
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_arrival_lookups"
down_revision: str | None = "0004_contact_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_contact_owner_lower_name", "contact",
                    ["owner_id", sa.func.lower(sa.text("name"))], unique=False)
    op.create_index("ix_draft_owner_id", "draft", ["owner_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_draft_owner_id", table_name="draft")
    op.drop_index("ix_contact_owner_lower_name", table_name="contact")
