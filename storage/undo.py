"""What ``undo`` needs: the rows one command touched and their values before it.

While an undoable command runs, a ``Recorder`` watches the session: every row of the
owner's contact book it inserts, changes or deletes is noted once, with the values it
had before the command (changes made with bulk ``UPDATE`` statements are recorded by
``before_rows`` first). ``reverse`` puts those values back, newest first: an inserted
row is deleted, a changed row gets its old values, a deleted row comes back with its
old id. Every statement is limited to the owner's own rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, event, insert, inspect, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from storage import search
from storage.models import (
    Cadence,
    Connection,
    Contact,
    Draft,
    Goal,
    Handle,
    Interaction,
    Owner,
    Reminder,
    UndoEntry,
    table_of,
)

# The contact book: what owner commands change. The outbox, undo log and prompts are
# deliberately not here: undoing a change never un-says a message.
TRACKED: tuple[type[SQLModel], ...] = (Owner, Contact, Handle, Interaction, Reminder, Draft,
                                       Cadence, Goal, Connection)


TABLES: dict[str, Table] = {table_of(model).name: table_of(model) for model in TRACKED}
ACTIVE_KEY = "plnbot_undo_recorder"


FULL = "$full"  # marks a whole row (one the command deleted), which undo may re-insert


class Recorder:
    """The rows one command touched, in order: ``(table, id, values before or None)``.

    For a changed row only the columns the command changed are kept, each with its
    first value, so undo never rolls back what something else changed meanwhile (a
    worker's lease, a delivery); a deleted row is kept whole."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self.changes: list[tuple[str, int, dict[str, Any] | None]] = []
        self.index: dict[tuple[str, int], int] = {}
        self.contacts: set[int] = set()  # whose search entries undo must refresh

    def note(self, table: str, row_id: int, before: dict[str, Any] | None,
             *contact_ids: int | None) -> None:
        self.contacts.update(c for c in contact_ids if c)
        key = (table, row_id)
        if key not in self.index:
            self.index[key] = len(self.changes)
            self.changes.append((table, row_id, before))
            return
        earlier = self.changes[self.index[key]][2]
        if earlier is not None and before is not None:
            for column, value in before.items():
                earlier.setdefault(column, value)

    def as_json(self) -> str:
        return json.dumps({"rows": [[t, i, _encode(b)] for t, i, b in self.changes],
                           "contacts": sorted(self.contacts)})


@contextmanager
def recording(session: Session, *, owner_id: int) -> Iterator[Recorder]:
    """Record what the session changes in the owner's contact book until the block ends."""
    recorder = Recorder(owner_id)
    session.info[ACTIVE_KEY] = recorder
    try:
        yield recorder
    finally:
        session.info.pop(ACTIVE_KEY, None)


def before_rows(session: Session, model: type[SQLModel], *conditions: Any,
                columns: tuple[str, ...]) -> None:
    """Note the current ``columns`` of rows a bulk statement is about to change."""
    recorder = session.info.get(ACTIVE_KEY)
    if recorder is None:
        return
    table = table_of(model)
    session.flush()
    for row in session.execute(core_select(table).where(*conditions)).mappings():
        recorder.note(table.name, row["id"], {c: row[c] for c in columns},
                      _contact_of(table.name, row))


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    recorder: Recorder | None = session.info.get(ACTIVE_KEY)
    if recorder is None:
        return
    for obj in (*session.dirty, *session.deleted):
        row_id = getattr(obj, "id", None)
        if (isinstance(obj, TRACKED) and row_id is not None
                and (obj in session.deleted or session.is_modified(obj))):
            deleted = obj in session.deleted
            before = _committed(obj, whole=deleted)
            name = table_of(type(obj)).name
            recorder.note(name, row_id, {**before, FULL: True} if deleted else before,
                          _contact_of(name, before), _contact_of(name, {**vars(obj)}))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    recorder: Recorder | None = session.info.get(ACTIVE_KEY)
    if recorder is None:
        return
    for obj in session.new:
        row_id = getattr(obj, "id", None)
        if isinstance(obj, TRACKED) and row_id is not None:
            name = table_of(type(obj)).name
            recorder.note(name, row_id, None, _contact_of(name, {**vars(obj), "id": row_id}))


def _contact_of(table: str, values: Any) -> int | None:
    """The contact whose search entry a row of ``table`` feeds, if any."""
    if table == "contact":
        return values.get("id")
    if table in ("handle", "interaction"):
        return values.get("contact_id")
    return None


def _committed(obj: SQLModel, *, whole: bool) -> dict[str, Any]:
    """The row's values as the database holds them (before this flush's changes): every
    column when ``whole``, else only the columns about to change."""
    state = inspect(obj)
    values: dict[str, Any] = {}
    for column in table_of(type(obj)).columns:
        history = state.attrs[column.key].load_history()
        if history.deleted:
            values[column.key] = history.deleted[0]
        elif whole:
            values[column.key] = (history.unchanged[0] if history.unchanged
                                  else getattr(obj, column.key))
    return values


def save(session: Session, *, recorder: Recorder, command: str, summary: str,
         now: datetime, quoted: list[str] | None = None) -> UndoEntry | None:
    """Keep what ``recorder`` saw as the owner's newest undoable change (if anything).
    ``quoted``: strangers' words the summary holds, so ``undo`` repeating it can show
    them as text on Discord too (``bot.context.quoted_in``)."""
    if not recorder.changes:
        return None
    changes = json.loads(recorder.as_json())
    if quoted:
        changes["quoted"] = quoted
    entry = UndoEntry(owner_id=recorder.owner_id, command=command[:4000],
                      summary=summary[:4000], changes_json=json.dumps(changes), at=now)
    session.add(entry)
    session.flush()
    return entry


# -- how far back ``undo`` reaches --------------------------------------------------------
# An owner expects ``undo`` to take back a slip: the change just made, or one from the
# last few weeks, even after a busy day of notes. Nobody steps back through hundreds of
# changes, and putting back a months-old value over everything done since would surprise
# more than help. So the log keeps every change from the last KEEP_DAYS days, however
# many, and the owner's last KEEP_LAST changes however old (someone back from a long
# holiday can still undo the last thing they did); older entries are pruned by the
# periodic sweep, at most PRUNE_BATCH a sweep, so a large backlog never makes one sweep
# (one transaction) long. The newest pruned entry stays as a marker (PRUNED), so an
# ``undo`` that reaches it says why there is nothing more instead of "nothing to undo".
KEEP_LAST = 100
KEEP_DAYS = 30
PRUNE_BATCH = 500
PRUNED = '{"pruned": true, "rows": [], "contacts": []}'


def prune(session: Session, *, owner_id: int, now: datetime,
          batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` of the owner's entries ``undo`` no longer reaches (older
    than KEEP_DAYS and behind the last KEEP_LAST), leaving the newest of them as the
    PRUNED marker; how many were deleted."""
    newest_kept = session.exec(
        select(UndoEntry.id).where(UndoEntry.owner_id == owner_id)
        .order_by(col(UndoEntry.id).desc()).offset(KEEP_LAST - 1).limit(1)).first()
    if newest_kept is None:  # fewer than KEEP_LAST entries: every one is kept
        return 0
    rows = session.exec(
        select(UndoEntry.id, col(UndoEntry.changes_json) == PRUNED)
        .where(UndoEntry.owner_id == owner_id, col(UndoEntry.id) < newest_kept,
               col(UndoEntry.at) < now - timedelta(days=KEEP_DAYS))
        .order_by(col(UndoEntry.id).desc()).limit(batch + 1)).all()
    if not rows:
        return 0
    (marker, is_marker), *gone = rows
    entries = table_of(UndoEntry)
    if gone:
        session.execute(delete(entries).where(entries.c.id.in_([row_id for row_id, _ in gone]),
                                              entries.c.owner_id == owner_id))
    if not is_marker:  # settled (only the marker left): nothing is written
        session.execute(update(entries).where(entries.c.id == marker).values(
            command="", summary="", changes_json=PRUNED, undone_at=None))
    return len(gone)


def pruned(entry: UndoEntry) -> bool:
    """Whether ``entry`` marks where the pruned part of the log begins (``prune``)."""
    return entry.changes_json == PRUNED


def latest(session: Session, *, owner_id: int) -> UndoEntry | None:
    return session.exec(
        select(UndoEntry).where(UndoEntry.owner_id == owner_id,
                                col(UndoEntry.undone_at).is_(None))
        .order_by(col(UndoEntry.id).desc()).limit(1)
    ).first()


def quoted(entry: UndoEntry) -> list[str]:
    """The strangers' words ``entry``'s summary quotes (see ``save``)."""
    words = json.loads(entry.changes_json).get("quoted")
    return [w for w in words if isinstance(w, str)] if isinstance(words, list) else []


class BuiltOn(Exception):
    """Something since depends on what the change made (someone added by hand has
    followed you since, so their connection hangs off the handle): it can't be undone."""


def reverse(session: Session, *, entry: UndoEntry, now: datetime) -> None:
    """Put back every row ``entry`` recorded, newest change first; all or nothing."""
    session.flush()
    stored = json.loads(entry.changes_json)
    contacts: set[int] = set(stored["contacts"])
    try:
        with session.begin_nested():
            for table_name, row_id, encoded in reversed(stored["rows"]):
                table = TABLES[table_name]
                before = _decode(table, encoded)
                _restore(session, table, row_id, before, owner_id=entry.owner_id)
                if table_name == "contact" and before and before.get("merged_into_id"):
                    contacts.add(before["merged_into_id"])
    except IntegrityError as exc:
        raise BuiltOn(str(exc.orig)) from None
    entry.undone_at = now
    session.add(entry)
    session.flush()
    session.expire_all()
    search.reindex(session.connection(), sorted(contacts))


def _restore(session: Session, table: Table, row_id: int, before: dict[str, Any] | None, *,
             owner_id: int) -> None:
    owned = (table.c.id == owner_id) if table.name == "owner" else (
        table.c.owner_id == owner_id)
    if before is None:
        session.execute(delete(table).where(table.c.id == row_id, owned))
        return
    whole = bool(before.pop(FULL, False))
    if whole and table.name != "owner" and before.get("owner_id") != owner_id:
        return
    if not before:
        return
    changed = session.execute(update(table).where(table.c.id == row_id, owned).values(before))
    if whole and not cast(CursorResult[Any], changed).rowcount:
        session.execute(insert(table).values(before))


def _encode(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: ({"$dt": v.isoformat()} if isinstance(v, datetime) else v)
            for k, v in values.items()}


def _decode(table: Table, values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: (datetime.fromisoformat(v["$dt"]) if isinstance(v, dict) and "$dt" in v else v)
            for k, v in values.items() if k in table.c or k == FULL}
