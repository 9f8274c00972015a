"""Bulk queries for connections and their events (the sync engine and loss reports).

A sync of a large account touches up to millions of rows, so these functions read
and write plain tuples and ``executemany`` batches instead of ORM objects: one query
for what is stored, one statement per batch of changes. Like ``storage.repo`` they
take the owner explicitly and filter by it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.sql.schema import ScalarElementColumnDefault
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


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]], *,
                shared: dict[str, Any] | None = None) -> list[int]:
    """Insert ``rows`` with one ``executemany`` and return their new ids, in order.

    ``shared``: values every row has (a row's own value for the same column wins), so
    a million rows need not each carry a copy of the same dozen defaults.
    ``INSERT … RETURNING`` in a guaranteed order runs row by row on SQLite, so the ids
    are reserved first (``reserve_ids``) and written explicitly.
    """
    if not rows:
        return []
    ids = reserve_ids(session, table, len(rows))
    executemany_insert(session, table, rows, ids=ids, shared=shared)
    search.track(session, table, rows, ids)
    return ids


def executemany_insert(session: Session, table: Table, rows: list[dict[str, Any]], *,
                       ids: Sequence[int] | None = None,
                       shared: dict[str, Any] | None = None) -> None:
    """One INSERT for many rows (with ``ids``, those are their primary keys; ``shared``,
    values of every row). On SQLite the rows go straight to the driver's
    ``executemany`` (SQLAlchemy's per-row parameter handling would cost more than the
    insert itself), their values picked column by column in C; each column's type
    conversion runs once per distinct value, and once for a shared value."""
    session.flush()
    connection = session.connection()
    shared = shared or {}
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), [{**shared, **row} for row in rows] if ids is None
                           else [{**shared, **row, "id": new_id}
                                 for row, new_id in zip(rows, ids, strict=True)])
        return
    own = dict.fromkeys(chain.from_iterable(rows))  # every column some row has
    names = (*(() if ids is None else ("id",)), *own,
             *(name for name in shared if name not in own))
    sql, positions, converters = sqlite_insert(table, names, connection.dialect)
    shared = {**column_defaults(table, [n for n in positions if n not in names]), **shared}
    # values every row shares are written into the statement: the driver binds each
    # parameter of each row (~0.2 µs), and a contact has 16 columns
    fixed = shared_literals(positions, converters, {k: v for k, v in shared.items()
                                                    if k not in own})
    if fixed:
        sql = insert_sql(table, positions, fixed, connection.dialect)
        kept = [(n, c) for n, c in zip(positions, converters, strict=True) if n not in fixed]
        positions, converters = tuple(n for n, _ in kept), [c for _, c in kept]
    params = driver_params(rows, positions, converters, ids=ids,
                           shared={k: v for k, v in shared.items() if k not in own},
                           defaults={k: v for k, v in shared.items() if k in own})
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


def column_defaults(table: Table, names: Sequence[str]) -> dict[str, Any]:
    """The model's default values of columns no row gives (as SQLAlchemy would insert)."""
    defaults = {}
    for name in names:
        default = table.c[name].default
        if not isinstance(default, ScalarElementColumnDefault):
            raise KeyError(name)  # no value for it: say which column
        defaults[name] = default.arg
    return defaults


def shared_literals(positions: Sequence[str],
                    converters: Sequence[Callable[[Any], Any] | None],
                    shared: dict[str, Any]) -> dict[str, str]:
    """column → SQL literal, for the shared values that can be written as one."""
    fixed = {}
    for name, convert in zip(positions, converters, strict=True):
        if name in shared:
            literal = sql_literal(shared[name] if convert is None else convert(shared[name]))
            if literal is not None:
                fixed[name] = literal
    return fixed


def sql_literal(value: Any) -> str | None:
    """``value`` as a SQLite literal that stores exactly what binding it stores (the same
    type and text), or None for anything else (it is bound as usual): NULL, integers
    of 64 bits, and text SQLite can read in a statement (no NUL, valid UTF-8)."""
    kind = type(value)
    if value is None:
        return "NULL"
    if kind is bool:
        return "1" if value else "0"
    if kind is int and -(2 ** 63) <= value < 2 ** 63:
        return str(value)
    if kind is str and "\x00" not in value:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return "'" + value.replace("'", "''") + "'"
    return None


def insert_sql(table: Table, positions: Sequence[str], fixed: dict[str, str], dialect
               ) -> str:
    """The INSERT of ``positions`` with ``fixed`` columns' literals in place of their
    parameters (the columns as ``sqlite_insert`` found them, defaults included)."""
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(table.c[name].name) for name in positions)
    values = ", ".join(fixed.get(name, "?") for name in positions)
    return f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({values})"


def driver_params(rows: list[dict[str, Any]], names: Sequence[str],
                  converters: Sequence[Callable[[Any], Any] | None], *,
                  ids: Sequence[int] | None = None, shared: dict[str, Any] | None = None,
                  defaults: dict[str, Any] | None = None) -> list[tuple]:
    """Each row's values in ``names`` order (``ids`` standing for the column "id",
    ``shared`` for columns no row has, ``defaults`` for those only some rows have),
    converted where a column needs it. Built a column at a time with ``map``, so no
    Python code runs per row for most columns: a column's conversion runs once per
    distinct value (rows share their times and flags), or per value when they cannot
    be told apart (unhashable ones)."""
    shared, defaults = shared or {}, defaults or {}
    columns: list[Any] = []
    for name, convert in zip(names, converters, strict=True):
        if name == "id" and ids is not None:
            columns.append(ids)
            continue
        if name in shared:
            value = shared[name] if convert is None else convert(shared[name])
            columns.append(repeat(value, len(rows)))
            continue
        column = (list(map(itemgetter(name), rows)) if name not in defaults
                  else [row.get(name, defaults[name]) for row in rows])
        columns.append(column if convert is None else converted(column, convert))
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


# A bulk insert at least this large into a table at most as large rebuilds the table's
# plain indexes afterwards instead of updating them row by row (``indexes_built_after``).
REBUILD_AT = 50_000
SORT_CACHE = -16_384  # KiB: SQLite sorts an index in as much memory as its page cache


@contextmanager
def indexes_built_after(session: Session, tables: Sequence[Table], *, rows: int
                        ) -> Iterator[None]:
    """On SQLite, insert about ``rows`` rows into each of ``tables`` with their plain
    (non-unique) indexes dropped, and build the indexes again at the end, in the same
    transaction: nobody else ever sees a table without them, and a crash or an error
    rolls the drop back with everything else.

    Why: a first sync of a million followers adds a dozen index entries a person, some
    at random places (names, handles), and each random insert dirties a page of a
    B-tree far bigger than the page cache; sorting each index once at the end costs a
    fraction of that (see the README's figures) and writes each page once. Only when
    the tables hold no more rows than are coming (a rebuild sorts them all), never for
    a small sync; unique indexes stay, since they enforce identity.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite" or rows < REBUILD_AT:
        yield
        return
    session.flush()
    saved = [index for table in tables
             if (connection.exec_driver_sql(f'SELECT count(*) FROM "{table.name}"').scalar()
                 or 0) <= rows
             for index in plain_indexes(connection, table.name)]
    for name, _sql in saved:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    except BaseException:
        with suppress(Exception):  # the rollback that follows restores them anyway
            build_indexes(session, saved)
        raise
    build_indexes(session, saved)


def build_indexes(session: Session, indexes: Sequence[tuple[str, str]]) -> None:
    """Run the saved CREATE INDEX statements. SQLite sorts an index in as much memory
    as its page cache may take, so the cache is made smaller while it does (a 1M-row
    sort in 64 MiB on top of a full cache would cost a first sync its memory goal)."""
    session.flush()
    connection = session.connection()
    cache = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size={SORT_CACHE}")
    try:
        for _name, sql in indexes:
            connection.exec_driver_sql(sql)
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={int(cache or SORT_CACHE)}")


def plain_indexes(connection, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that are not unique, as the
    schema stores them (so they come back exactly as they were)."""
    return [(name, sql) for name, sql in connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
        "AND sql IS NOT NULL ORDER BY name", (table,))
        if not sql.lstrip().upper().startswith("CREATE UNIQUE")]


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
    rows = [{"connection_id": cid} for cid in connection_ids]
    if rows:
        executemany_insert(session, table_of(ConnectionEvent), rows, shared={
            "owner_id": owner_id, "kind": kind, "at": at, "detail": detail,
            "reported": reported})


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
