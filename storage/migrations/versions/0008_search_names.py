"""contact search: names and handles get a small index of their own (SQLite only)

``find`` ranks people whose name or handle matches first. In the main FTS5 index a
column filter (``{name handles} : …``) still reads every row that holds the word
anywhere: on 100,000 contacts with 1,000,000 notes, 0.4–1.5 ms for "maths leeds",
which no name holds. A second table with only those two columns answers in 0.02 ms,
and ``<person>`` lookups by name use it too. It is filled from the main index's own
copy of the words (about a second for 100,000 contacts), and kept with it from then
on. PostgreSQL's index is unchanged (its weight labels already select the columns).

Revision ID: 0008_search_names
Revises: 0007_search_prefixes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_search_names"
down_revision: str | None = "0007_search_prefixes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = (
    "CREATE VIRTUAL TABLE contact_search_names USING fts5("
    "owner_id UNINDEXED, name, handles, "
    "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4 5 6 7 8 9 10')"
)


def upgrade() -> None:
    from storage import search

    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(TABLE)
    op.execute("INSERT INTO contact_search_names(contact_search_names, rank) "
               f"VALUES ('rank', '{search.sqlite_rank(search.NAME_COLUMNS)}')")
    op.execute("INSERT INTO contact_search_names (rowid, owner_id, name, handles) "
               "SELECT rowid, owner_id, name, handles FROM contact_search")


def downgrade() -> None:
    from storage import search

    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute("DROP TABLE IF EXISTS contact_search_names")
    search.forget(bind)
