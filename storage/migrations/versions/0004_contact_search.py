"""contact search index (FTS5 on SQLite, tsvector + GIN on PostgreSQL)

Also indexes reminder.contact_id and draft.contact_id, which ``who`` and ``link``
look up by contact.

Revision ID: 0004_contact_search
Revises: 0003_lost_connections
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_contact_search"
down_revision: str | None = "0003_lost_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TABLE = (
    "CREATE VIRTUAL TABLE contact_search USING fts5("
    "owner_id UNINDEXED, name, handles, bio, tags, notes, "
    "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
)
POSTGRES_TABLE = (
    "CREATE TABLE contact_search ("
    "contact_id INTEGER PRIMARY KEY REFERENCES contact(id) ON DELETE CASCADE, "
    "owner_id INTEGER NOT NULL, document TSVECTOR NOT NULL)"
)


def upgrade() -> None:
    from storage import search

    with op.batch_alter_table("reminder") as batch_op:
        batch_op.create_index("ix_reminder_contact_id", ["contact_id"], unique=False)
    with op.batch_alter_table("draft") as batch_op:
        batch_op.create_index("ix_draft_contact_id", ["contact_id"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(SQLITE_TABLE)
    elif bind.dialect.name == "postgresql":
        op.execute(POSTGRES_TABLE)
        op.execute("CREATE INDEX ix_contact_search_document ON contact_search "
                   "USING gin (document)")
        op.execute("CREATE INDEX ix_contact_search_owner ON contact_search (owner_id)")
    search.rebuild(bind)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS contact_search")
    with op.batch_alter_table("draft") as batch_op:
        batch_op.drop_index("ix_draft_contact_id")
    with op.batch_alter_table("reminder") as batch_op:
        batch_op.drop_index("ix_reminder_contact_id")
