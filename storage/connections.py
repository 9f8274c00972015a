"""Bulk queries for connections and their events (the sync engine and loss reports).

A sync of a large account touches up to millions of rows, so these functions read
and write plain tuples and ``executemany`` batches instead of ORM objects: one query
for what is stored, one statement per batch of changes. Like ``storage.repo`` they
take the owner explicitly and filter by it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, func, select

from storage import search
from storage.models import (
    Account,
    Connection,
    ConnectionEvent,
    Contact,
    Handle,
    MassDrop,
    Owner,
    table_of,
)

# Enough ids per IN (...) to keep statements few, few enough for every SQLite build.
CHUNK = 900
LOSS_KINDS = ("lost", "severed")


def _rows(session: Session, statement) -> Iterable[tuple]:
    """Plain row tuples through the Core connection (no ORM bookkeeping per row)."""
    session.flush()
    return session.connection().execute(statement)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class Inactive:
    """A stored connection that is not active: lost (maybe to return) or vanished."""

    connection_id: int
    state: str
    mass_drop_id: int | None
    lost_cause: str | None


def active_connections(
    session: Session, *, owner_id: int, account_id: int, kind: str
) -> dict[str, tuple[int, int | None]]:
    """external id → (connection id, profile checksum) of every active connection."""
    return {external_id: (connection_id, checksum) for external_id, connection_id, checksum
            in iter_active_connections(session, owner_id=owner_id, account_id=account_id,
                                       kind=kind)}


def iter_active_connections(
    session: Session, *, owner_id: int, account_id: int, kind: str
) -> Iterable[tuple[str, int, int | None]]:
    """(external id, connection id, profile checksum) of every active connection: one
    query, plain tuples, read as they come (a million-follower account is never held
    as a second copy in memory)."""
    return _driver_rows(session,
        select(Handle.external_id, Connection.id, Handle.profile_hash)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(
            Connection.owner_id == owner_id, Connection.account_id == account_id,
            Connection.kind == kind, Connection.state == "active",
        )
    )


def _driver_rows(session: Session, statement) -> Iterable[tuple]:
    """Plain tuples straight from the database driver: for the one query that reads a
    whole account (a million rows), SQLAlchemy's per-row Result objects cost too much.
    Only for columns whose values need no conversion (ids, strings, integers)."""
    session.flush()
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    params = compiled.params
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None, "a connection the session has just used is open"
    cursor = dbapi.cursor()
    cursor.execute(str(compiled), params)
    return cast(Iterable[tuple], cursor)  # sqlite3's and psycopg's cursors iterate rows


def active_connection_id(
    session: Session, *, owner_id: int, account_id: int, kind: str, external_id: str
) -> int | None:
    """The active connection with one person, if there is one."""
    return session.exec(
        select(Connection.id)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(
            Connection.owner_id == owner_id, Connection.account_id == account_id,
            Connection.kind == kind, Connection.state == "active",
            Handle.external_id == external_id,
        )
    ).first()


def active_connections_named(
    session: Session, *, owner_id: int, account_id: int, kind: str,
    external_ids: Collection[str], handles: Collection[str],
) -> set[int]:
    """Active connections with whoever has one of these ids or (normalised) handles:
    the people a list named but could not show readably (few, so one small query)."""
    if not (external_ids or handles):
        return set()
    return set(session.exec(
        select(Connection.id)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(
            Connection.owner_id == owner_id, Connection.account_id == account_id,
            Connection.kind == kind, Connection.state == "active",
            or_(col(Handle.external_id).in_(list(external_ids)),
                col(Handle.handle).in_(list(handles))),
        )
    ))


def inactive_connections(
    session: Session, *, owner_id: int, account_id: int, kind: str
) -> dict[str, Inactive]:
    """external id → the lost or vanished connection (usually few, so richer rows)."""
    rows = _rows(session,
        core_select(col(Handle.external_id), col(Connection.id), col(Connection.state),
                    col(Connection.mass_drop_id), col(Connection.lost_cause))
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(
            col(Connection.owner_id) == owner_id, col(Connection.account_id) == account_id,
            col(Connection.kind) == kind, col(Connection.state) != "active",
        )
    )
    return {ext: Inactive(*row) for ext, *row in rows}


def handle_ids(
    session: Session, *, owner_id: int, platform: str, external_ids: Sequence[str]
) -> dict[str, int]:
    """external id → handle id for the handles that already exist."""
    found: dict[str, int] = {}
    for batch in chunks(list(external_ids)):
        rows = _rows(session,
            select(Handle.external_id, Handle.id).where(
                Handle.owner_id == owner_id, Handle.platform == platform,
                col(Handle.external_id).in_(batch),
            )
        )
        found.update(iter(rows))
    return found


def has_handles(session: Session, *, owner_id: int, platform: str) -> bool:
    """Whether the owner has any handle on ``platform`` (an index probe)."""
    return session.exec(select(Handle.id).where(
        Handle.owner_id == owner_id, Handle.platform == platform).limit(1)).first() is not None


def handle_contacts(
    session: Session, *, owner_id: int, platform: str, external_ids: Sequence[str]
) -> dict[str, tuple[int, int, str]]:
    """external id → (handle id, contact id, contact name), for refreshing profiles."""
    found: dict[str, tuple[int, int, str]] = {}
    for batch in chunks(list(external_ids)):
        rows = _rows(session,
            select(Handle.external_id, Handle.id, Contact.id, Contact.name)
            .join(Contact, col(Contact.id) == Handle.contact_id)
            .where(Handle.owner_id == owner_id, Handle.platform == platform,
                   col(Handle.external_id).in_(batch))
        )
        found.update((ext, (hid, cid, name)) for ext, hid, cid, name in rows)
    return found


def update_by_id(session: Session, table: Table, rows: list[dict[str, Any]], *,
                 index: bool = True) -> None:
    """``executemany`` UPDATE: each row names its ``row_id`` and the values to set.
    ``index=False``: the caller re-indexes the rows itself (``search.reindex``)."""
    if not rows:
        return
    session.flush()
    names = [name for name in rows[0] if name != "row_id"]
    # a bind parameter may not share a column's name in an UPDATE's SET clause
    statement = (update(table).where(table.c.id == bindparam("row_id"))
                 .values({name: bindparam(f"set_{name}") for name in names}))
    params = [{"row_id": row["row_id"], **{f"set_{n}": row[n] for n in names}} for row in rows]
    session.connection().execute(statement, params)
    if index:
        search.track(session, table, rows)


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` with one ``executemany`` and return their new ids, in order.

    ``INSERT … RETURNING`` in a guaranteed order runs row by row on SQLite, so the ids
    are reserved first (``reserve_ids``) and written explicitly.
    """
    if not rows:
        return []
    ids = reserve_ids(session, table, len(rows))
    executemany_insert(session, table, rows, ids=ids)
    search.track(session, table, rows, ids)
    return ids


def executemany_insert(session: Session, table: Table, rows: list[dict[str, Any]], *,
                       ids: Sequence[int] | None = None) -> None:
    """One INSERT for many rows (with ``ids``, those are their primary keys). On SQLite
    the rows go straight to the driver's ``executemany`` (SQLAlchemy's per-row
    parameter handling would cost more than the insert itself), their values picked
    column by column in C; each column's type conversion runs once per distinct value."""
    session.flush()
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), rows if ids is None else [
            {**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
        return
    names = tuple(rows[0]) if ids is None else ("id", *rows[0])
    sql, positions, converters = sqlite_insert(table, names, connection.dialect)
    params = driver_params(rows, positions, converters, ids=ids)
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None, "a connection the session has just used is open"
    dbapi.cursor().executemany(sql, params)


_INSERTS: dict[tuple, tuple[str, tuple[str, ...], list]] = {}


def sqlite_insert(table: Table, names: tuple[str, ...], dialect
                  ) -> tuple[str, tuple[str, ...], list[Callable[[Any], Any] | None]]:
    """The INSERT of ``names`` into ``table``: its SQL, its parameters' order and their
    conversions, compiled once per process (a first sync inserts 200 batches)."""
    key = (table.name, id(table), names, dialect.name)
    if key not in _INSERTS:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
        assert compiled.positiontup is not None, "SQLite's parameters are positional"
        positions = tuple(compiled.positiontup)
        _INSERTS[key] = (str(compiled), positions,
                         [bind_processor(table.c[name].type, dialect) for name in positions])
    return _INSERTS[key]


def driver_params(rows: list[dict[str, Any]], names: Sequence[str],
                  converters: Sequence[Callable[[Any], Any] | None], *,
                  ids: Sequence[int] | None = None) -> list[tuple]:
    """Each row's values in ``names`` order (``ids`` standing for the column "id"),
    converted where a column needs it. Built a column at a time with ``map``, so no
    Python code runs per row: a column's conversion runs once per distinct value
    (rows share their times and flags), or per value when they cannot be told apart
    (unhashable ones)."""
    columns: list[Any] = []
    for name, convert in zip(names, converters, strict=True):
        column = list(ids) if name == "id" and ids is not None else list(
            map(itemgetter(name), rows))
        if convert is not None:
            column = converted(column, convert)
        columns.append(column)
    return list(zip(*columns, strict=True))


def converted(column: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    try:
        memo = {value: convert(value) for value in set(column)}
    except TypeError:  # unhashable values: convert every one
        return [convert(value) for value in column]
    return list(map(memo.__getitem__, column))


def bind_processor(column_type, dialect) -> Callable[[Any], Any] | None:
    """The column's bind conversion; None when values go to the driver as they are."""
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` primary keys nobody else can take.

    PostgreSQL hands them out from the table's sequence. SQLite has one writer at a
    time: once this transaction has written (the flush below makes sure) nobody else
    can insert until it commits, so the ids after the current maximum are ours.
    """
    session.flush()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        sequence = connection.execute(
            select(func.pg_get_serial_sequence(table.name, "id"))).scalar_one()
        return list(connection.execute(
            select(func.nextval(sequence)).select_from(func.generate_series(1, count))
        ).scalars())
    # a write, even of no rows, takes SQLite's write lock for the rest of the transaction
    connection.exec_driver_sql("UPDATE owner SET id = id WHERE 0")
    highest = connection.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(highest + 1, highest + 1 + count))


def insert_plain(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with one ``executemany`` (no ids needed back)."""
    if rows:
        executemany_insert(session, table, rows)
        search.track(session, table, rows)


def update_connections(
    session: Session, *, owner_id: int, connection_ids: Sequence[int], **values: Any
) -> None:
    """Set ``values`` on many connections, a batch of ids per statement."""
    session.flush()
    for batch in chunks(list(connection_ids)):
        session.connection().execute(
            update(table_of(Connection))
            .where(col(Connection.owner_id) == owner_id, col(Connection.id).in_(batch))
            .values(**values)
        )


def add_events(
    session: Session, *, owner_id: int, connection_ids: Iterable[int], kind: str, at: datetime,
    detail: str = "", reported: bool = False,
) -> None:
    shared = {"owner_id": owner_id, "kind": kind, "at": at, "detail": detail,
              "reported": reported}
    rows = [{**shared, "connection_id": cid} for cid in connection_ids]
    insert_plain(session, table_of(ConnectionEvent), rows)


@dataclass(frozen=True)
class ConnectionRow:
    """A connection with the person behind it, for reports."""

    connection: Connection
    handle: Handle
    contact: Contact


def connection_rows(
    session: Session, *, owner_id: int, connection_ids: Sequence[int]
) -> list[ConnectionRow]:
    """The connections with their handles and contacts, in the order of ``connection_ids``."""
    found: dict[int, ConnectionRow] = {}
    for batch in chunks(list(connection_ids)):
        rows = session.exec(
            select(Connection, Handle, Contact)
            .join(Handle, col(Handle.id) == Connection.handle_id)
            .join(Contact, col(Contact.id) == Handle.contact_id)
            .where(Connection.owner_id == owner_id, col(Connection.id).in_(batch))
            .execution_options(populate_existing=True)
        )
        found.update({c.id: ConnectionRow(c, h, p) for c, h, p in rows})
    return [found[cid] for cid in connection_ids if cid in found]


def vanished_ids(session: Session, *, owner_id: int, mass_drop_id: int) -> list[int]:
    """The connections of a mass drop that are still missing."""
    return list(
        session.exec(
            select(Connection.id)
            .where(
                Connection.owner_id == owner_id, Connection.mass_drop_id == mass_drop_id,
                Connection.state == "vanished",
            )
            .order_by(col(Connection.id))
        )
    )


def open_mass_drops(
    session: Session, *, owner_id: int, account_id: int | None = None
) -> list[MassDrop]:
    query = select(MassDrop).where(MassDrop.owner_id == owner_id, MassDrop.status == "open")
    if account_id is not None:
        query = query.where(MassDrop.account_id == account_id)
    return list(session.exec(query.order_by(col(MassDrop.id))))


def recheck_due(session: Session, *, owner: Owner, account: Account, now: datetime) -> bool:
    """True when a mass drop on ``account`` waits for a re-check: a live source should do
    a full reconciliation now instead of waiting for its usual schedule."""
    return any(
        drop.next_check_at <= now
        for drop in open_mass_drops(session, owner_id=owner.id, account_id=account.id)
    )


def accounts_due_for_recheck(session: Session, *, owner: Owner, now: datetime) -> list[Account]:
    """The owner's accounts with a mass drop whose re-check is due."""
    drops = open_mass_drops(session, owner_id=owner.id)
    due = sorted({d.account_id for d in drops if d.next_check_at <= now})
    return [session.get_one(Account, account_id) for account_id in due]


@dataclass(frozen=True)
class EventRow:
    """A connection event with everything needed to show it."""

    event: ConnectionEvent
    connection: Connection
    handle: Handle
    contact: Contact


def connection_events(
    session: Session, *, owner: Owner, since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[str] = ("lost", "severed", "vanished", "returned"),
    unreported_only: bool = False, limit: int | None = None,
) -> list[EventRow]:
    """Connection events of ``kinds`` in [since, until), newest first."""
    query = (
        select(ConnectionEvent, Connection, Handle, Contact)
        .join(Connection, col(Connection.id) == ConnectionEvent.connection_id)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .join(Contact, col(Contact.id) == Handle.contact_id)
        .where(
            ConnectionEvent.owner_id == owner.id, col(ConnectionEvent.kind).in_(kinds),
        )
        .order_by(col(ConnectionEvent.at).desc(), col(ConnectionEvent.id).desc())
        .execution_options(populate_existing=True)
    )
    if since is not None:
        query = query.where(ConnectionEvent.at >= since)
    if until is not None:
        query = query.where(ConnectionEvent.at < until)
    if unreported_only:
        query = query.where(col(ConnectionEvent.reported).is_(False))
    if limit is not None:
        query = query.limit(limit)
    return [EventRow(*row) for row in session.exec(query)]


def mark_reported(session: Session, *, owner: Owner, event_ids: Sequence[int]) -> None:
    """Remember that the owner has been told about these events (digest, message)."""
    session.flush()
    for batch in chunks(list(event_ids)):
        session.connection().execute(
            update(table_of(ConnectionEvent))
            .where(col(ConnectionEvent.owner_id) == owner.id, col(ConnectionEvent.id).in_(batch))
            .values(reported=True)
        )
