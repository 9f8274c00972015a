"""The contact search index behind ``find`` and ``<person>`` resolution.

One row per live contact holds its words, folded (lower case, no accents) and split
into columns: name, handles, bio (with role, organisation, location, interests),
tags and notes. SQLite keeps it in an FTS5 table, PostgreSQL in a weighted
``tsvector`` with a GIN index; the words are folded and tokenised here in Python so
both engines see exactly the same words and answer the same queries.

SQLite also keeps names and handles in a second, small FTS5 table: ``find`` and
``<person>`` look names up there, where a word that fills thousands of notes but no
name costs nothing.

The index maintains itself: an ``after_flush`` hook on every ORM session notes the
contacts whose name, profile, handles or interactions changed, and ``before_commit``
re-indexes them once, in the same transaction. Core bulk writes report what they
touched with ``track()``; loaders that bypass SQLAlchemy call ``rebuild()``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, event, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlmodel import col

from storage.models import Contact, Handle, Interaction, table_of

TABLE = "contact_search"
NAMES_TABLE = f"{TABLE}_names"  # SQLite only: names and handles again (migration 0008)
COLUMNS = ("name", "handles", "bio", "tags", "notes")
NAME_COLUMNS = ("name", "handles")
SQLITE_WEIGHTS = {"name": 10.0, "handles": 8.0, "bio": 3.0, "tags": 4.0, "notes": 1.0}
PG_WEIGHTS = {"name": "A", "handles": "B", "bio": "C", "tags": "C", "notes": "D"}
WORD = re.compile(r"[^\W_]+")
MAX_NOTES_CHARS = 20_000
MAX_QUERY_WORDS = 8
CHUNK = 500
CONTACT_FIELDS = ("name", "bio", "role", "organisation", "location", "interests",
                  "field", "merged_into_id", "owner_id")
HANDLE_FIELDS = ("handle", "display_handle", "contact_id")
INTERACTION_FIELDS = ("text", "tags", "contact_id")

_ready: set[tuple[str, str]] = set()


def fold(value: str | None) -> str:
    """Lower-case without accents: "Zoë Ångström" → "zoe angstrom"."""
    if value is None or value.isascii():  # nothing to decompose (most names and bios)
        return (value or "").casefold()
    decomposed = unicodedata.normalize("NFKD", value or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def words(value: str | None) -> list[str]:
    """The folded words of ``value``; handles and URLs split at their punctuation."""
    return WORD.findall(fold(value))


def include_name(name: str | None, type_: str, _parents) -> bool:
    """Alembic filter: the search index is managed by hand, not by the models."""
    return not (type_ == "table" and (name or "").startswith(TABLE))


@dataclass
class Document:
    contact_id: int
    owner_id: int
    name: str = ""
    handles: str = ""
    bio: str = ""
    tags: str = ""
    notes: str = ""

    def params(self) -> dict:
        return {"id": self.contact_id, "owner": self.owner_id,
                **{column: " ".join(words(getattr(self, column))) for column in COLUMNS}}


# ---------------------------------------------------------------- maintenance


def has_index(conn: Connection) -> bool:
    """Whether this database has the index (it is created by migration 0004)."""
    return _has_table(conn, TABLE)


def has_names(conn: Connection) -> bool:
    """Whether this SQLite database has the small name-and-handle index (migration
    0008); until it does, names are looked up in the main index."""
    return conn.dialect.name == "sqlite" and _has_table(conn, NAMES_TABLE)


def _has_table(conn: Connection, table: str) -> bool:
    key = (conn.engine.url.render_as_string(hide_password=False), table)
    if key in _ready:
        return True
    if conn.dialect.name == "sqlite":
        found = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :t"), {"t": table})
    elif conn.dialect.name == "postgresql":
        found = conn.execute(text("SELECT to_regclass(:t)"), {"t": table})
    else:
        return False
    if found.scalar() is not None:
        _ready.add(key)
        return True
    return False


def forget(conn: Connection) -> None:
    """Forget which index tables this database has (a downgrade just dropped one)."""
    url = conn.engine.url.render_as_string(hide_password=False)
    _ready.difference_update({key for key in _ready if key[0] == url})


def reindex(conn: Connection, contact_ids: Iterable[int], *,
            fresh: Collection[int] = ()) -> None:
    """Bring the index rows of ``contact_ids`` up to date (merged/deleted ones leave it).

    ``fresh`` contacts were inserted in this transaction and have no rows to delete:
    looking for them anyway cost a million-follower first sync 105 of its 163 s, as
    the index outgrew SQLite's page cache.
    """
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        indexed = [contact_id for contact_id in chunk if contact_id not in fresh]
        if indexed:
            _delete(conn, indexed)
        documents = build_documents(conn, chunk)
        if documents:
            _insert(conn, documents)


# FTS5 merges its index segments as it writes: each flush of its in-memory hash writes
# a new segment, and every level with ``automerge`` segments is merged into one of the
# next. While a first sync's backlog is read (a segment every batch, for minutes) that
# rewrote each word about once per level; a larger hash (one segment a batch instead of
# four) and wider merges (16 segments, not 4) rewrite it half as often. FTS5 keeps
# these settings in the table itself (``<table>_config``): they are set for the bulk
# reading and set back when nobody's profiles are left to read; the sweeps after it
# then finish the merging a step at a time (``merge_some``).
BULK_MERGING = {"automerge": 16, "hashsize": 8 * 2**20}
USUAL_MERGING = {"automerge": 4, "hashsize": 2**20}  # FTS5's defaults


def bulk_merging(conn: Connection, bulk: bool) -> None:
    """Set the SQLite index tables' merge settings for a bulk reading (``bulk``) or
    back to the usual ones; writes only what differs."""
    if conn.dialect.name != "sqlite" or not has_index(conn):
        return
    if bulk:
        _merged.discard(conn.engine.url.render_as_string(hide_password=False))
    wanted = BULK_MERGING if bulk else USUAL_MERGING
    for table in (TABLE, NAMES_TABLE) if has_names(conn) else (TABLE,):
        stored = {key: value for key, value in
                  conn.execute(text(f"SELECT k, v FROM {table}_config"))}
        for key, value in wanted.items():
            if stored.get(key, USUAL_MERGING[key]) != value:
                conn.execute(text(f"INSERT INTO {table} ({table}, rank) VALUES (:key, :value)"),
                             {"key": key, "value": value})


MERGE_PAGES = 500  # one step of merging left after a bulk reading (about 2 MiB written)
_merged: set[str] = set()  # databases whose index had nothing left to merge


def merge_some(conn: Connection) -> bool:
    """One step of the merging a bulk reading left (SQLite): up to ``MERGE_PAGES`` pages
    a table, as FTS5 would have merged them with its usual settings (levels of 4 or more
    segments). Returns whether there was any; once there is none, this process stops
    asking (until the next bulk reading). A name looked up in an index of many segments
    looks in each of them."""
    if not may_merge(conn):
        return False
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None, "a connection in use is open"
    cursor, worked = dbapi.cursor(), False
    for table in (TABLE, NAMES_TABLE) if has_names(conn) else (TABLE,):
        before = dbapi.total_changes
        cursor.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('merge', ?)",
                       (MERGE_PAGES,))
        worked = worked or dbapi.total_changes - before >= 2
    if not worked:
        _merged.add(conn.engine.url.render_as_string(hide_password=False))
    return worked


def may_merge(conn: Connection) -> bool:
    """Whether ``merge_some`` may still find work here (SQLite, not known done)."""
    return (conn.dialect.name == "sqlite" and has_index(conn)
            and conn.engine.url.render_as_string(hide_password=False) not in _merged)


def indexed(conn: Connection, contact_ids: Sequence[int]) -> set[int]:
    """Which of ``contact_ids`` have a row in the index."""
    if not contact_ids or not has_index(conn):
        return set()
    key = "rowid" if conn.dialect.name == "sqlite" else "contact_id"
    statement = text(f"SELECT {key} FROM {TABLE} WHERE {key} IN :ids")
    found: set[int] = set()
    for start in range(0, len(contact_ids), CHUNK):
        found.update(conn.execute(statement.bindparams(bindparam("ids", expanding=True)),
                                  {"ids": list(contact_ids[start:start + CHUNK])}).scalars())
    return found


def index_new(session: Session, documents: Sequence[Document]) -> None:
    """Index contacts this transaction has just inserted in bulk, from the values in
    hand: nothing to delete, nothing to read back. They leave the commit's to-do list
    (a later change in the same transaction puts them back, and is then re-indexed).

    A first sync of 100,000 followers spent over a third of its time re-reading and
    re-indexing them one chunk at a time at commit.
    """
    if not documents:
        return
    ids = {document.contact_id for document in documents}
    _pending(session).difference_update(ids)
    session.info.setdefault(FRESH, set()).difference_update(ids)
    conn = session.connection()
    if has_index(conn):
        _insert(conn, list(documents))


def leave_unindexed(session: Session, contact_ids: Collection[int]) -> None:
    """Contacts this transaction inserted in bulk that stay out of the index for now
    (a first sync's, read and indexed later by ``handlers.backlog``)."""
    if contact_ids:
        _pending(session).difference_update(contact_ids)
        session.info.setdefault(FRESH, set()).difference_update(contact_ids)


def bio_words(bio: str | None, role: str | None, organisation: str | None,
              location: str | None, interests: str | None) -> str:
    """The text of a contact's "bio" column: its bio and what was understood from it."""
    return " ".join(filter(None, (bio, role, organisation, location,
                                  (interests or "").replace(",", " "))))


def rebuild(conn: Connection, *, owner_id: int | None = None) -> int:
    """Re-index every contact (of one owner, or everyone); returns how many."""
    if not has_index(conn):
        return 0
    query = select(col(Contact.id)).where(col(Contact.merged_into_id).is_(None))
    if owner_id is not None:
        query = query.where(col(Contact.owner_id) == owner_id)
    ids = list(conn.execute(query).scalars())
    reindex(conn, ids)
    return len(ids)


def build_documents(conn: Connection, ids: Sequence[int]) -> list[Document]:
    contact = table_of(Contact).c
    rows = conn.execute(
        select(contact.id, contact.owner_id, contact.name, contact.bio, contact.role,
               contact.organisation, contact.location, contact.interests)
        .where(contact.id.in_(ids), contact.merged_into_id.is_(None))
    ).all()
    documents = {
        row.id: Document(
            contact_id=row.id, owner_id=row.owner_id, name=row.name,
            bio=bio_words(row.bio, row.role, row.organisation, row.location, row.interests),
        )
        for row in rows
    }
    if documents:
        _add_handles(conn, documents)
        _add_interactions(conn, documents)
    return list(documents.values())


def _add_handles(conn: Connection, documents: dict[int, Document]) -> None:
    handle = table_of(Handle).c
    found: dict[int, list[str]] = defaultdict(list)
    for row in conn.execute(select(handle.contact_id, handle.handle)
                            .where(handle.contact_id.in_(list(documents)))):
        found[row.contact_id].append(row.handle)
    for contact_id, handles in found.items():
        documents[contact_id].handles = " ".join(handles)


def _add_interactions(conn: Connection, documents: dict[int, Document]) -> None:
    interaction = table_of(Interaction).c
    notes: dict[int, list[str]] = defaultdict(list)
    tags: dict[int, list[str]] = defaultdict(list)
    sizes: dict[int, int] = defaultdict(int)
    rows = conn.execute(
        select(interaction.contact_id, interaction.text, interaction.tags)
        .where(interaction.contact_id.in_(list(documents)))
        .order_by(interaction.at.desc())
    )
    for row in rows:
        tags[row.contact_id].append(row.tags or "")
        if sizes[row.contact_id] < MAX_NOTES_CHARS:
            notes[row.contact_id].append(row.text or "")
            sizes[row.contact_id] += len(row.text or "")
    for contact_id, document in documents.items():
        document.notes = " ".join(notes.get(contact_id, ()))
        document.tags = " ".join(tags.get(contact_id, ()))


def _delete(conn: Connection, ids: list[int]) -> None:
    key = "rowid" if conn.dialect.name == "sqlite" else "contact_id"
    for table in (TABLE, NAMES_TABLE) if has_names(conn) else (TABLE,):
        statement = text(f"DELETE FROM {table} WHERE {key} IN :ids")
        conn.execute(statement.bindparams(bindparam("ids", expanding=True)), {"ids": ids})


def _insert(conn: Connection, documents: list[Document]) -> None:
    if conn.dialect.name == "sqlite":
        _insert_sqlite(conn, documents)
        return
    params = [document.params() for document in documents]
    vector = " || ".join(
        f"setweight(to_tsvector('simple', :{column}), '{PG_WEIGHTS[column]}')"
        for column in COLUMNS
    )
    conn.execute(text(
        f"INSERT INTO {TABLE} (contact_id, owner_id, document) VALUES (:id, :owner, {vector})"
    ), params)


def _insert_sqlite(conn: Connection, documents: list[Document]) -> None:
    """Straight to the driver's ``executemany``, in rowid order (SQLAlchemy's per-row
    parameter handling cost more than FTS5's own work on a first sync's backlog)."""
    rows = sorted((d.contact_id, d.owner_id, " ".join(words(d.name)),
                   " ".join(words(d.handles)), " ".join(words(d.bio)),
                   " ".join(words(d.tags)), " ".join(words(d.notes))) for d in documents)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None, "a connection in use is open"
    cursor = dbapi.cursor()
    cursor.executemany(f"INSERT INTO {TABLE} (rowid, owner_id, name, handles, bio, tags, "
                       "notes) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    if has_names(conn):
        cursor.executemany(f"INSERT INTO {NAMES_TABLE} (rowid, owner_id, name, handles) "
                           "VALUES (?, ?, ?, ?)", [row[:4] for row in rows])


def _changed(obj, fields: Sequence[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def changed_contact_ids(session: Session) -> set[int]:
    """Contacts whose indexed words may have changed in the flush that just ran."""
    ids: set[int] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        by_model: dict[type, tuple[str, ...]] = {
            Contact: CONTACT_FIELDS, Handle: HANDLE_FIELDS, Interaction: INTERACTION_FIELDS}
        fields = by_model.get(type(obj))
        if fields is None:
            continue
        fresh = obj in session.new or obj in session.deleted
        if not (fresh or _changed(obj, fields)):
            continue
        ids.add(obj.id if isinstance(obj, Contact) else obj.contact_id)
        if not isinstance(obj, Contact):
            ids.update(v for v in inspect(obj).attrs.contact_id.history.deleted if v)
    ids.discard(None)
    return ids


PENDING = "plnbot_search_pending"
FRESH = "plnbot_search_fresh"  # contacts this transaction inserted in bulk


def _pending(session: Session) -> set[int]:
    return session.info.setdefault(PENDING, set())


def track(session: Session, table, rows: Sequence[dict], ids: Sequence[int] | None = None,
          ) -> None:
    """Core bulk writes (``executemany``) report the contacts they touched here.

    ``rows`` are the parameter dicts; ``ids`` the new ids of an INSERT, if any. Updates
    name their rows by ``row_id``. The contacts are re-indexed when the transaction
    commits, like ORM changes.
    """
    name = getattr(table, "name", "")
    if name == "contact" and ids is not None:
        session.info.setdefault(FRESH, set()).update(ids)
    if name == "contact":
        touched = list(ids) if ids is not None else [r.get("row_id") for r in rows]
    elif name in ("handle", "interaction") and all("contact_id" in r for r in rows):
        touched = [r["contact_id"] for r in rows]
    elif name == "handle":
        handle_ids = [r.get("row_id") or r.get("id") for r in rows]
        touched = list(session.connection().execute(
            select(table_of(Handle).c.contact_id)
            .where(table_of(Handle).c.id.in_([i for i in handle_ids if i]))
        ).scalars())
    else:
        return
    _pending(session).update(i for i in touched if i)


@event.listens_for(Session, "after_flush")
def _collect_after_flush(session: Session, _flush_context) -> None:
    ids = changed_contact_ids(session)
    if ids:
        _pending(session).update(ids)


@event.listens_for(Session, "before_commit")
def _reindex_before_commit(session: Session) -> None:
    """One re-index per transaction (or savepoint) for everything it changed."""
    session.flush()
    ids = session.info.pop(PENDING, None)
    fresh = session.info.pop(FRESH, set())
    if ids:
        conn = session.connection()
        if has_index(conn):
            reindex(conn, ids, fresh=fresh)


def catch_up(session: Session) -> None:
    """Index what this transaction has changed so far (otherwise done at commit), for a
    query that must see it."""
    _reindex_before_commit(session)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(FRESH, None)


# ---------------------------------------------------------------------- queries

# Ranking costs about 1 µs per matching contact on SQLite (FTS5 scores every match
# before it sorts): "find teacher" over 10,005 matches took 8 ms of a 13 ms command,
# a two-letter word matching 59,000 took 50 ms. Past this many matches in a tier only
# the newest are ranked (about 1 ms), and the reply says so.
RANK_WINDOW = 1_000


@dataclass
class Ranked:
    """Contact ids, best match first. ``partial``: some tier matched more than the
    window, so only its newest matches were ranked."""

    ids: list[int]
    partial: bool = False


@dataclass(frozen=True)
class _Tier:
    """One ranked query: its table, its words, and what differs between the engines."""

    table: str
    id: str
    condition: str
    order: str
    match: str


def search(conn: Connection, *, owner_id: int, query: str, columns: Sequence[str] = COLUMNS,
           prefix: bool = True, limit: int = 20) -> list[int]:
    """Contact ids whose ``columns`` hold every word of ``query``, best match first
    (see ``ranked``)."""
    return ranked(conn, owner_id=owner_id, query=query, columns=columns, prefix=prefix,
                  limit=limit).ids


def ranked(conn: Connection, *, owner_id: int, query: str, columns: Sequence[str] = COLUMNS,
           prefix: bool = True, limit: int = 20, window: int | None = None) -> Ranked:
    """Contact ids whose ``columns`` hold every word of ``query``, best match first.

    ``prefix`` lets each word match the start of a longer word ("ang" → "angstrom");
    one-letter words always match whole words only, to keep queries selective.
    People whose name or handle holds every word come first (someone called Jane before
    someone whose notes mention Jane), then everyone else; each tier is ranked by the
    column weights, over at most its newest ``window`` matches (``RANK_WINDOW``).
    """
    terms = words(query)[:MAX_QUERY_WORDS]
    if not terms or not has_index(conn):
        return Ranked([])
    found = Ranked([])
    alone = _sole_owner(conn, owner_id)
    for tier_columns in tiers(columns):
        tier = _tier(conn, terms, tier_columns, prefix)
        ids, partial = _rank_tier(conn, tier, owner_id, limit - len(found.ids),
                                  window or RANK_WINDOW, found.ids, alone=alone)
        found = Ranked(found.ids + ids, found.partial or partial)
        if len(found.ids) >= limit:
            break
    return found


def tiers(columns: Sequence[str]) -> list[tuple[str, ...]]:
    """The column sets searched in turn: names and handles first, when asked for with
    others, because a name match is what someone looking a person up means first."""
    first = tuple(c for c in COLUMNS if c in NAME_COLUMNS and c in columns)
    rest = tuple(c for c in COLUMNS if c in columns)
    return [first, rest] if first and first != rest else [rest]


def _tier(conn: Connection, terms: list[str], columns: tuple[str, ...], prefix: bool) -> _Tier:
    """SQLite looks names and handles up in their own small index when it has one: in
    the main one a column filter still reads every note that holds the word."""
    if conn.dialect.name != "sqlite":
        return _Tier(TABLE, "contact_id", "document @@ to_tsquery('simple', :match)",
                     "ts_rank(document, to_tsquery('simple', :match)) DESC, contact_id",
                     _postgres_match(terms, columns, prefix))
    names = set(columns) <= set(NAME_COLUMNS) and has_names(conn)
    table, indexed = (NAMES_TABLE, NAME_COLUMNS) if names else (TABLE, COLUMNS)
    return _Tier(table, "rowid", f"{table} MATCH :match", "rank",
                 _sqlite_match(terms, columns, prefix, indexed))


def _sole_owner(conn: Connection, owner_id: int) -> bool:
    """Whether nobody else has a row here (the usual SQLite file: one person's bot)."""
    other = conn.execute(text("SELECT 1 FROM owner WHERE id <> :owner LIMIT 1"),
                         {"owner": owner_id})
    return other.scalar() is None


def _rank_tier(conn: Connection, tier: _Tier, owner_id: int, limit: int, window: int,
               exclude: list[int], *, alone: bool) -> tuple[list[int], bool]:
    """The best ``limit`` of one tier's matches (minus ``exclude``), and whether there
    were more than ``window`` of them, of which only the newest were ranked.

    Where the window starts is found without the owner condition when the owner is
    ``alone`` in the database (it holds for every row then): FTS5 stores owner_id
    unindexed, so checking it reads each match's stored row, 0.7 µs a match. The
    ranked query itself always checks it.
    """
    where = tier.condition
    params = {"match": tier.match, "owner": owner_id, "window": window, "limit": limit}
    if exclude:
        where += f" AND {tier.id} NOT IN :exclude"
        params["exclude"] = exclude
    mine = f"{where} AND owner_id = :owner"
    cut = _execute(conn, f"SELECT {tier.id} FROM {tier.table} WHERE {where if alone else mine} "
                         f"ORDER BY {tier.id} DESC LIMIT 1 OFFSET :window", params).scalar()
    if cut is not None:
        mine += f" AND {tier.id} > :cut"
        params["cut"] = cut
    rows = _execute(conn, f"SELECT {tier.id} FROM {tier.table} WHERE {mine} "
                          f"ORDER BY {tier.order} LIMIT :limit", params)
    return [row[0] for row in rows], cut is not None


def _execute(conn: Connection, sql: str, params: dict):
    statement = text(sql)
    if "exclude" in params:
        statement = statement.bindparams(bindparam("exclude", expanding=True))
    return conn.execute(statement, params)


def tagged(conn: Connection, *, owner_id: int, tag: str) -> list[int] | None:
    """Contacts whose indexed tags hold every word of ``tag``, or None without an index.

    A superset of the people with an interaction tagged exactly ``#tag`` (the index
    splits "#year-5" into words, and PostgreSQL files tags with bios), for the caller
    to check: a keep-in-touch rule for a tag then reads those people's interactions,
    not every interaction the owner ever logged (190 ms at a million).
    """
    terms = words(tag)
    if not terms or not has_index(conn):
        return None
    if conn.dialect.name == "sqlite":
        sql = f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH :match AND owner_id = :owner"
        match = _sqlite_match(terms, ("tags",), False, COLUMNS)
    else:
        sql = (f"SELECT contact_id FROM {TABLE} "
               "WHERE owner_id = :owner AND document @@ to_tsquery('simple', :match)")
        match = _postgres_match(terms, ("tags",), False)
    return [row[0] for row in conn.execute(text(sql), {"match": match, "owner": owner_id})]


def sqlite_rank(columns: Sequence[str] = COLUMNS) -> str:
    """FTS5's rank function with the column weights (set by migrations 0006 and 0008):
    ``ORDER BY rank`` lets FTS5 sort matches itself, twice as fast on a broad query as
    sorting by ``bm25(…)`` afterwards. Equal scores come in rowid order either way."""
    weights = ", ".join(["0.0", *(str(SQLITE_WEIGHTS[c]) for c in columns)])
    return f"bm25({weights})"


def _sqlite_match(terms: list[str], columns: Sequence[str], prefix: bool,
                  indexed: Sequence[str]) -> str:
    star = "*" if prefix else ""
    phrase = " AND ".join(f'"{t}"{star if len(t) > 1 else ""}' for t in terms)
    # a column filter costs time even when it names every column
    return phrase if set(columns) == set(indexed) else f"{{{' '.join(columns)}}} : ({phrase})"


def _postgres_match(terms: list[str], columns: Sequence[str], prefix: bool) -> str:
    labels = "".join(sorted({PG_WEIGHTS[c] for c in columns}))
    labels = "" if labels == "ABCD" else labels
    terms = [f"{t}:{'*' if prefix and len(t) > 1 else ''}{labels}" for t in terms]
    return " & ".join(t.rstrip(":") for t in terms)
