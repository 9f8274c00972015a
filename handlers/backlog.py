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
- a command first reads whatever is left (``catch_up``), so ``who``, ``find``,
  ``people`` and the rest never answer from half-read profiles;
- the weekly digest and the mid-week nudge (which count fields) wait until it is done.

Each batch is one transaction with the flags it clears, and only pending contacts are
read, so a process killed mid-way loses at most the batch it was in, which is read
again, and nobody is read twice. What is stored is exactly what the first sync used to
store (a test compares both, and the index with a rebuild).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from sqlalchemy import bindparam, text
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
# bare ``profile_pending`` term is what lets SQLite and PostgreSQL use it
PENDING = "SELECT id FROM contact WHERE owner_id = :owner AND profile_pending"


def pending(session: Session, *, owner_id: int) -> bool:
    """Whether the owner has contacts a first sync stored and nobody has read yet."""
    found = session.connection().execute(text(f"{PENDING} LIMIT 1"), {"owner": owner_id})
    return found.first() is not None


def remaining(session: Session, *, owner_id: int) -> int:
    found = session.connection().execute(text(f"SELECT count(*) FROM ({PENDING}) AS p"),
                                         {"owner": owner_id})
    return int(found.scalar_one())


def read(session: Session, *, owner_id: int, limit: int | None = None) -> int:
    """Understand and index the owner's next ``limit`` (``BATCH``) pending contacts;
    returns how many (0: nothing left). Their flags clear in the caller's transaction."""
    session.flush()
    ids = [row[0] for row in session.connection().execute(
        text(f"{PENDING} ORDER BY id LIMIT :limit"),
        {"owner": owner_id, "limit": limit or BATCH})]
    if not ids:
        return 0
    handles = first_handles(session, ids)
    store.update_by_id(session, table_of(Contact), [
        {"row_id": contact_id, **understood(handles.get(contact_id)), "profile_pending": False}
        for contact_id in ids], index=False)
    # indexed now, inside this batch's time; most have no row yet, so nothing to delete
    # (a command may have indexed a few meanwhile, e.g. by logging a conversation)
    conn = session.connection()
    search.reindex(conn, ids, fresh=set(ids) - search.indexed(conn, ids))
    return len(ids)


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
    ``TICK``, until the backlog is empty."""
    if event.name == TICK:
        read(ctx.session, owner_id=ctx.owner.id)
        return
    if event.name != "sweep":
        return
    deadline = time.monotonic() + SWEEP_SECONDS
    while read(ctx.session, owner_id=ctx.owner.id) and time.monotonic() < deadline:
        pass
