"""contact search: the column weights become FTS5's own rank (SQLite only)

``ORDER BY rank`` lets FTS5 sort the matches itself; ``ORDER BY bm25(…, weights),
rowid`` made SQLite sort them afterwards, which doubled the time of a broad ``find``
over a large network. PostgreSQL's index is unchanged.

Revision ID: 0006_search_rank
Revises: 0005_arrival_lookups
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_search_rank"
down_revision: str | None = "0005_arrival_lookups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from storage import search

    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"INSERT INTO contact_search(contact_search, rank) "
                   f"VALUES ('rank', '{search.sqlite_rank()}')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("INSERT INTO contact_search(contact_search, rank) VALUES ('rank', 'bm25()')")
