"""The profile backlog: people a first sync stored but has not read yet.

An account's first sync (the quiet baseline) records everyone already there and drafts
nobody, so what their profiles say (role, organisation, place, field, interests) and
the search index's words are not needed at once. Understanding and indexing were
two thirds of a first sync (about 60 µs a person: a minute for a million followers
before the owner heard anything), so the baseline now stores each contact with
``profile_pending`` set and its platform JSON on its handle, and this module reads
them later, in batches:

- after each sweep, ``plnbot run``, ``console`` and ``demo`` read it a batch per
  transaction until it is done (``bot.app.App.read_backlog``), so arrivals and polls
  go between batches; a worker's sweep reads for up to ``SWEEP_SECONDS`` each time;
- a command never answers from a half-read profile, and most never wait: one about
  a person (``log``, ``who``, ``remind``…) finds them among the unread by name or
  handle (``named``) and reads them on the spot (``read_these``); one about everyone
  (``find``, ``export``, ``digest``, ``people field``) reads whatever is left first
  (``catch_up``), so that a search or a count is complete (see
  ``handlers.commands.NAMED``);
- the weekly digest and the mid-week nudge (which count fields) wait until it is done.

Each batch is one transaction with the flags it clears, and only pending contacts are
read, so a process killed mid-way loses at most the batch it was in, which is read
again, and nobody is read twice. What is stored is exactly what the first sync used to
store (a test compares both, and the index with a rebuild).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from collections.abc import Collection, Generator, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from bot import platforms
from bot.context import Context
from bot.dispatcher import on
from bot.events import Profile, Tick
from handlers import profiles, welcome
from storage import connections as store
from storage import search
from storage.models import Contact, table_of

log = logging.getLogger(__name__)

BATCH = 5_000  # contacts per read (one search-index segment each: smaller ones made
# the index merge ever more of them, 231 µs a person by 300,000 instead of 133)
SWEEP_SECONDS = 1.0  # reading per sweep, so commands are not kept waiting long

# the partial index ix_contact_profile_pending holds the pending contacts alone: the
# bare ``profile_pending`` term is what lets SQLite and PostgreSQL use it. SQLite is
# also told to (``INDEXED BY``): its sampled statistics rate the index like those
# starting with owner_id, and through them each batch walked past everyone read before it (at a
# million followers, 0.1–0.2 s a batch and a ``pending`` check, growing as it went)
PENDING = "SELECT id FROM contact{hint} WHERE owner_id = :owner AND profile_pending"
SQLITE_HINT = " INDEXED BY ix_contact_profile_pending"


def pending_sql(session: Session, sql: str = PENDING) -> str:
    """``sql`` with its ``{hint}`` filled for this database."""
    sqlite = session.connection().dialect.name == "sqlite"
    return sql.replace("{hint}", SQLITE_HINT if sqlite else "")


def pending(session: Session, *, owner_id: int) -> bool:
    """Whether the owner has contacts a first sync stored and nobody has read yet."""
    found = session.connection().execute(text(f"{pending_sql(session)} LIMIT 1"),
                                         {"owner": owner_id})
    return found.first() is not None


def remaining(session: Session, *, owner_id: int) -> int:
    found = session.connection().execute(
        text(f"SELECT count(*) FROM ({pending_sql(session)}) AS p"), {"owner": owner_id})
    return int(found.scalar_one())


def read(session: Session, *, owner_id: int, limit: int | None = None) -> int:
    """Understand and index the owner's next ``limit`` (``BATCH``) pending contacts;
    returns how many (0: nothing left). Their flags clear in the caller's transaction."""
    session.flush()
    ids = [row[0] for row in session.connection().execute(
        text(f"{pending_sql(session)} ORDER BY id LIMIT :limit"),
        {"owner": owner_id, "limit": limit or BATCH})]
    if ids:
        search.bulk_merging(session.connection(), True)
    _read_ids(session, ids)
    if len(ids) < (limit or BATCH) and not anyone_pending(session):
        search.bulk_merging(session.connection(), False)  # the last batch
    return len(ids)


def anyone_pending(session: Session) -> bool:
    """Whether any owner's first sync has profiles left to read (the partial index)."""
    found = session.connection().execute(
        text(pending_sql(session, "SELECT 1 FROM contact{hint} WHERE profile_pending LIMIT 1")))
    return found.first() is not None


def read_these(session: Session, contact_ids: Collection[int]) -> list[int]:
    """Read now those of ``contact_ids`` still pending (a command is about to show or
    change them), in the caller's transaction; returns their ids.

    Contacts already loaded in the session are expired, so they show what was read.
    """
    wanted = sorted(set(contact_ids))
    if not wanted:
        return []
    session.flush()
    statement = text("SELECT id FROM contact WHERE profile_pending AND id IN :ids"
                     ).bindparams(bindparam("ids", expanding=True))
    ids = sorted(contact_id for chunk in store.chunks(wanted)
                 for contact_id in session.connection().execute(
                     statement, {"ids": list(chunk)}).scalars())
    _read_ids(session, ids)
    for contact_id in ids:
        loaded = session.identity_map.get(identity_key(Contact, contact_id))
        if loaded is not None:
            session.expire(loaded)
    return ids


def _read_ids(session: Session, ids: list[int]) -> None:
    """Fill the contact columns of ``ids`` (pending, ascending) from their profiles,
    clear their flags and index them."""
    if not ids:
        return
    handles = first_handles(session, ids)
    _store(session, [{"row_id": contact_id, **understood(handles.get(contact_id)),
                      "profile_pending": False} for contact_id in ids])
    # indexed now, inside this batch's time; most have no row yet, so nothing to delete
    # (a command may have indexed a few meanwhile, e.g. by logging a conversation)
    conn = session.connection()
    search.reindex(conn, ids, fresh=set(ids) - search.indexed(conn, ids))


def _store(session: Session, rows: list[dict]) -> None:
    """UPDATE the contacts (re-indexed by the caller). On SQLite straight through the
    driver's ``executemany``: SQLAlchemy's parameter handling was three quarters of
    the update's 11 µs a person."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        store.update_by_id(session, table_of(Contact), rows, index=False)
        return
    columns = [name for name in rows[0] if name != "row_id"]
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None, "a connection in use is open"
    dbapi.cursor().executemany(
        f"UPDATE contact SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?",
        [(*(row[name] for name in columns), row["row_id"]) for row in rows])


def first_handles(session: Session, contact_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """contact id → (platform, profile JSON) of its first handle (the one the sync made)."""
    found: dict[int, tuple[str, str]] = {}
    for chunk in store.chunks(list(contact_ids)):
        rows = session.connection().execute(
            text("SELECT contact_id, platform, profile_json FROM handle "
                 "WHERE contact_id IN :ids ORDER BY id").bindparams(
                bindparam("ids", expanding=True)), {"ids": list(chunk)})
        for contact_id, platform, profile_json in rows:
            found.setdefault(contact_id, (platform, profile_json))
    return found


# Finding a pending person by name or handle. They are not in the search index yet,
# so their names are read from the contact and handle tables: a scan of the pending
# rows (SQL keeps only those whose text holds the first word: LIKE ignores ASCII case,
# and any text with other characters is kept for Python to fold), then each word is
# matched as the index would (a whole word, or with ``prefix`` the start of one).
NAMED_COLUMNS = {
    "name": "SELECT id, name FROM contact{hint} WHERE owner_id = :owner AND profile_pending "
            "AND merged_into_id IS NULL AND ({like} OR {other})",
    "handles": "SELECT c.id, h.handle FROM contact c{hint} JOIN handle h "
               "ON h.contact_id = c.id WHERE c.owner_id = :owner AND c.profile_pending "
               "AND c.merged_into_id IS NULL AND ({like} OR {other})",
}
CANDIDATES_KEPT = 2_000  # a scan's rows kept for the command's other lookups
CANDIDATES = "plnbot_backlog_candidates"


def named(session: Session, *, owner_id: int, query: str, column: str, prefix: bool,
          limit: int) -> list[int]:
    """Pending contacts whose ``column`` ("name" or "handles") holds every word of
    ``query`` as ``storage.search.search`` would find it once they are indexed, in id
    order (at most ``limit``). Costs a scan of the pending contacts: at a million of
    them about half a second of processor time, none when nobody is pending.

    One command often looks the same first words up several times (``log Ana Lee
    met…`` tries "ana lee met", "ana lee", then "ana"), so the scan for its first word
    (or first two, when the first is in thousands of names) is kept for the rest of the
    command when it found few (``forget_candidates`` drops it).
    """
    terms = search.words(query)[:search.MAX_QUERY_WORDS]
    if not terms or not pending(session, owner_id=owner_id):
        return []
    found = []
    with contextlib.closing(_candidates(session, owner_id, column, terms)) as rows:
        for contact_id, tokens in rows:
            if all(_holds(tokens, term, prefix) for term in terms):
                found.append(contact_id)
                if len(found) >= limit:
                    break
    return found


def _holds(tokens: list[str], term: str, prefix: bool) -> bool:
    if prefix and len(term) > 1:
        return any(token.startswith(term) for token in tokens)
    return term in tokens


def _candidates(session: Session, owner_id: int, column: str,
                terms: list[str]) -> Generator[tuple[int, list[str]], None, None]:
    """(contact id, folded words of ``column``) of pending contacts whose text holds
    the first term, or the first two when the first alone is in too many, and so on
    (each kept for the command's next lookups), by id."""
    kept = session.info.setdefault(CANDIDATES, {})
    for size in range(1, len(terms) + 1):
        key = (owner_id, column, tuple(terms[:size]))
        if key not in kept:
            with contextlib.closing(_scan(session, owner_id, column, terms[:size])) as scan:
                rows = list(itertools.islice(scan, CANDIDATES_KEPT + 1))
            kept[key] = rows if len(rows) <= CANDIDATES_KEPT else None  # None: too many
        if kept[key] is not None:
            yield from kept[key]
            return
    yield from _scan(session, owner_id, column, terms)  # read only as far as needed


def _scan(session: Session, owner_id: int, column: str,
          terms: list[str]) -> Generator[tuple[int, list[str]], None, None]:
    conn = session.connection()
    target = "name" if column == "name" else "h.handle"
    postgres = conn.dialect.name == "postgresql"
    like = " AND ".join(f"{target} {'ILIKE' if postgres else 'LIKE'} :t{n}"
                        for n in range(len(terms)))
    other = f"{target} ~ '[^ -~]'" if postgres else f"{target} GLOB '*[^ -~]*'"
    sql = pending_sql(session, NAMED_COLUMNS[column].format(like=like, other=other, hint="{hint}")
                      ) + " ORDER BY 1"
    params = {"owner": owner_id, **{f"t{n}": f"%{t}%" for n, t in enumerate(terms)}}
    rows = conn.execute(text(sql), params)
    try:
        for contact_id, values in itertools.groupby(rows, key=lambda row: row[0]):
            yield contact_id, [word for value in values for word in search.words(value[1])]
    finally:
        rows.close()


def forget_candidates(session: Session) -> None:
    """Drop the name scans kept for one command (``named``)."""
    session.info.pop(CANDIDATES, None)


# what a contact holds when its profile says nothing (every row of one UPDATE sets
# the same columns)
NOTHING_READ = {"bio": "", "first_name": None, "role": None, "organisation": None,
                "location": None, "website": None, "field": "other", "interests": ""}


def understood(handle: tuple[str, str] | None) -> dict:
    """The contact columns a first sync fills from a profile (``contact_values``)."""
    profile = profile_from_json(*handle) if handle else None
    return {**NOTHING_READ, **(contact_values(profile) if profile else {})}


def contact_values(profile: Profile) -> dict:
    """What a baseline contact stores from its profile, understood where there is
    something to read (``handlers.connections.contact_row`` before the backlog)."""
    row: dict = {"location": profile.location or None, "website": profile.url or None}
    if profile.bio or profile.fields:
        row.update(welcome.understood_values(profiles.understand_safely(profile, spam=False),
                                             profile.bio))
    return row


def profile_from_json(platform: str, profile_json: str) -> Profile | None:
    """The ``Profile`` the sync had, translated again from the platform JSON it stored
    (already cleaned: ``handlers.untrusted.clean_raw``); None when it cannot be."""
    try:
        raw = json.loads(profile_json)
        translate = platforms.get(platform).translate
        if translate is None or not isinstance(raw, dict) or not raw:
            return None
        return translate(raw)
    except Exception:  # noqa: BLE001 - one unreadable profile must not stop the others
        log.exception("could not read back a stored %s profile", platform)
        return None


def catch_up(session: Session, *, owner_id: int) -> int:
    """Read everything still pending (a command is about to look at contacts)."""
    done = 0
    while count := read(session, owner_id=owner_id):
        done += count
    if done:
        log.info("read %s profiles of a first sync before a command", done)
    return done


TICK = "backlog"  # one batch (``bot.app.App.read_backlog`` sends these after a sweep)


@on(Tick)
async def read_during_sweep(event: Tick, ctx: Context) -> None:
    """A few batches each sweep (a worker's, which sends no ``TICK``), or one batch a
    ``TICK``, until the backlog is empty; then, for the rest of the sweep's
    ``SWEEP_SECONDS``, the search index's merging the bulk reading left."""
    if event.name == TICK:
        read(ctx.session, owner_id=ctx.owner.id)
        return
    if event.name != "sweep":
        return
    deadline = time.monotonic() + SWEEP_SECONDS
    while read(ctx.session, owner_id=ctx.owner.id) and time.monotonic() < deadline:
        pass
    conn = ctx.session.connection()
    if search.may_merge(conn) and not anyone_pending(ctx.session):
        # what the bulk reading left the search index to merge, a step at a time
        while time.monotonic() < deadline and search.merge_some(conn):
            pass
