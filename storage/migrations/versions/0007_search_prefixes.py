"""contact search: prefix indexes for words of 2 to 10 letters (SQLite only)

``find maths leeds`` matches the start of each word ("maths*" AND "leeds*"). Without a
prefix index FTS5 merges the lists of every word beginning that way at query time:
on 100,000 contacts with 1,000,000 notes two-word searches took 11 ms at the median
and up to 19 ms; with prefix indexes up to 10 letters, at most 9 ms. The index roughly
doubles in size (59 → 123 MB there). The table is rebuilt from the contacts.

Revision ID: 0007_search_prefixes
Revises: 0006_search_rank
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_search_prefixes"
down_revision: str | None = "0006_search_rank"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = (
    "CREATE VIRTUAL TABLE contact_search USING fts5("
    "owner_id UNINDEXED, name, handles, bio, tags, notes, "
    "tokenize = 'unicode61 remove_diacritics 2', prefix = '{prefixes}')"
)


def recreate(prefixes: str) -> None:
    from storage import search

    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute("DROP TABLE IF EXISTS contact_search")
    op.execute(TABLE.format(prefixes=prefixes))
    op.execute(f"INSERT INTO contact_search(contact_search, rank) "
               f"VALUES ('rank', '{search.sqlite_rank()}')")
    search.rebuild(bind)


def upgrade() -> None:
    recreate("2 3 4 5 6 7 8 9 10")


def downgrade() -> None:
    recreate("2 3")
