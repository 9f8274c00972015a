"""several accounts per platform: unique by owner, platform and the account's own id

An owner had at most one account per platform, so connecting a second Discord server
(or another Mastodon account) replaced the first, and its members then looked gone.
Accounts are now unique by (owner, platform, external id): one row per server or
account. Every existing row keeps its place (the old rule was stricter than the new
one). Going back fails while an owner has two accounts on one platform: disconnect one
and delete its row first.

Revision ID: 0014_accounts_per_platform
Revises: 0013_profile_backlog
"""

from collections.abc import Sequence

import sqlmodel.sql.sqltypes  # noqa: F401 - the models' column types, for autogenerate
from alembic import op

revision: str = "0014_accounts_per_platform"
down_revision: str | None = "0013_profile_backlog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_constraint("uq_account_owner_platform", type_="unique")
        batch_op.create_unique_constraint("uq_account_owner_platform_external",
                                          ["owner_id", "platform", "external_id"])


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_constraint("uq_account_owner_platform_external", type_="unique")
        batch_op.create_unique_constraint("uq_account_owner_platform",
                                          ["owner_id", "platform"])
