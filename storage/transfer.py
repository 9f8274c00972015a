"""Export everything an owner has, and import a JSON export back.

The export is a set of flat tables (accounts, contacts, handles, connections,
interactions, reminders, drafts, cadences, goals) plus the owner's settings, with
the database's own ids and column values, so the JSON and the CSV files carry the
same data and a JSON export imported into an empty database exports identically.
Internal state (leases, sync cursors, error text, the outbox) and secrets (which
live only in the environment) are never part of it.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import String, bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection as DBConnection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from storage import search
from storage.models import (
    Account,
    Cadence,
    Connection,
    Contact,
    Draft,
    Goal,
    Handle,
    Interaction,
    Owner,
    Reminder,
    table_of,
)

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets;
# names and bios come from strangers, so such cells get a leading ' (text).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMAT = "plnbot-export"
VERSION = 1
OWNER_FIELDS = ("name", "tz", "quiet_start", "quiet_end", "tone", "signature", "field",
                "interests", "bio", "digest_weekday", "digest_time", "report_losses",
                "date_order")
SKIPPED = {"owner_id", "lease_owner", "lease_until", "cursor", "last_error", "last_error_at",
           "mass_drop_id", "followers_count_seen", "last_synced_at", "last_reconciled_at",
           # credentials never leave the database
           "credentials", "connected_at", "next_poll_at", "last_polled_at",
           "rate_limited_until"}
# (name in the export, model, {column: table whose id it refers to})
TABLES: tuple[tuple[str, type[SQLModel], dict[str, str]], ...] = (
    ("accounts", Account, {}),
    ("contacts", Contact, {"merged_into_id": "contacts"}),
    ("handles", Handle, {"contact_id": "contacts"}),
    ("connections", Connection, {"account_id": "accounts", "handle_id": "handles"}),
    ("interactions", Interaction, {"contact_id": "contacts"}),
    ("reminders", Reminder, {"contact_id": "contacts"}),
    ("drafts", Draft, {"contact_id": "contacts", "handle_id": "handles"}),
    ("cadences", Cadence, {"contact_id": "contacts"}),
    ("goals", Goal, {}),
)


# The values each state or kind column may hold: anything else makes a row vanish from
# every view (the code reads only these), so an import refuses it.
PLATFORM_NAMES = frozenset({"x", "mastodon", "bluesky", "discord", "console"})
ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("accounts", "platform"): PLATFORM_NAMES,
    ("handles", "platform"): PLATFORM_NAMES,
    ("drafts", "platform"): PLATFORM_NAMES,
    ("connections", "kind"): frozenset({"follower", "following", "member"}),
    ("connections", "state"): frozenset({"active", "lost", "vanished"}),
    ("interactions", "kind"): frozenset({"conversation", "note", "welcome"}),
    ("drafts", "status"): frozenset({"pending", "sending", "sent", "skipped", "expired",
                                     "uncertain"}),
    ("reminders", "kind"): frozenset({"reminder", "followup"}),
    ("reminders", "status"): frozenset({"open", "delivered", "done", "cancelled"}),
    ("goals", "kind"): frozenset({"conversations", "connections", "outside"}),
}
INT_RANGE = (-(2**63), 2**63 - 1)  # what every database here stores in an integer column
INT32_RANGE = (-(2**31), 2**31 - 1)  # PostgreSQL INTEGER (the id columns)


class TransferError(Exception):
    """An export file that cannot be imported; the message says what is wrong."""


def columns_of(model: type[SQLModel]) -> list[str]:
    return [c.name for c in table_of(model).columns if c.name not in SKIPPED]


# ----------------------------------------------------------------------- export


def export_data(session: Session, *, owner: Owner, now: datetime) -> dict[str, Any]:
    """Everything ``owner`` has, as plain JSON-ready values."""
    data: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "exported_at": _value(now),
        "owner": {name: _value(getattr(owner, name)) for name in OWNER_FIELDS},
    }
    conn = session.connection()
    for name, model, _refs in TABLES:
        table = table_of(model)
        columns = columns_of(model)
        rows = conn.execute(
            select(*(table.c[c] for c in columns))
            .where(table.c.owner_id == owner.id).order_by(table.c.id)
        )
        data[name] = [{c: _value(v) for c, v in zip(columns, row, strict=True)}
                      for row in rows]
    return data


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def counts(data: dict[str, Any]) -> dict[str, int]:
    return {name: len(data.get(name, ())) for name, _model, _refs in TABLES}


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def to_csv_zip(data: dict[str, Any]) -> bytes:
    """A zip holding owner.csv plus one CSV per table, with the same columns as the JSON."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("owner.csv", _csv(list(OWNER_FIELDS), [data["owner"]]))
        for name, model, _refs in TABLES:
            archive.writestr(f"{name}.csv", _csv(columns_of(model), data[name]))
    return buffer.getvalue()


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value  # OWASP "CSV injection": a spreadsheet shows it, never runs it
    return value


# ----------------------------------------------------------------------- import


def load_json(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TransferError(f"it is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise TransferError("it is nested far deeper than any plnbot export") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TransferError("it is not a plnbot export (no \"format\": \"plnbot-export\")")
    if data.get("version") != VERSION:
        raise TransferError(f"it is export version {data.get('version')!r}; "
                            f"this plnbot reads version {VERSION}")
    return data


def import_data(session: Session, *, owner: Owner, data: dict[str, Any]) -> dict[str, int]:
    """Add an export's rows to ``owner``, who must have no contacts yet.

    Ids are kept when they are free (always, in an empty database) and otherwise
    shifted past the largest id in use, with every reference shifted alike. Rows go
    in with bulk inserts, then the search index is rebuilt once.
    """
    has_contacts = session.execute(
        select(func.count()).select_from(Contact).where(col(Contact.owner_id) == owner.id)
    ).scalar()
    if has_contacts:
        raise TransferError("this database already has contacts for you; import into an "
                            "empty database (e.g. --db sqlite:///new.sqlite3) to avoid "
                            "duplicate people")
    _apply_owner(owner, data.get("owner"))
    conn = session.connection()
    offsets = {name: _offset(conn, model) for name, model, _refs in TABLES}
    tables = {name: [_row(model, record, name, n, owner, offsets, refs)
                     for n, record in enumerate(_records(data, name), 1)]
              for name, model, refs in TABLES}
    _check_references(data, tables, offsets)
    session.add(owner)
    session.flush()
    try:
        for name, model, _refs in TABLES:
            _insert(conn, model, tables[name])
    except IntegrityError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise TransferError(f"its rows conflict with each other or with the database "
                            f"({reason})") from exc
    _reset_sequences(conn)
    search.rebuild(conn, owner_id=owner.id)
    return counts(data)


def _insert(conn: DBConnection, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """Bulk insert; a contact merged into a later one gets its link once both exist."""
    if not rows:
        return
    links = [{"row_id": r["id"], "target": r["merged_into_id"]}
             for r in rows if r.get("merged_into_id") is not None]
    for row in rows:
        if "merged_into_id" in row:
            row["merged_into_id"] = None
    conn.execute(insert(table_of(model)), rows)
    if links:
        table = table_of(model)
        conn.execute(
            update(table).where(table.c.id == bindparam("row_id"))
            .values(merged_into_id=bindparam("target")), links,
        )


def _records(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    records = data.get(name, [])
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TransferError(f"{name!r} must be a list of objects")
    return records


def _apply_owner(owner: Owner, values: Any) -> None:
    if not isinstance(values, dict):
        raise TransferError("\"owner\" must be an object with your settings")
    for name in OWNER_FIELDS:
        if name in values:
            setattr(owner, name, _coerce(Owner, name, values[name], f"owner.{name}"))
    try:
        ZoneInfo(owner.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TransferError(f"owner.tz {owner.tz!r} is not a known time zone") from exc
    if owner.date_order not in (None, "day-first", "month-first"):
        raise TransferError(f"owner.date_order {owner.date_order!r} is not day-first, "
                            "month-first or null")


def _offset(conn: DBConnection, model: type[SQLModel]) -> int:
    return conn.execute(select(func.max(table_of(model).c.id))).scalar() or 0


def _row(model, record, name, number, owner, offsets, refs) -> dict[str, Any]:
    where = f"{name}[{number}]"
    row: dict[str, Any] = {"owner_id": owner.id}
    for column in columns_of(model):
        if column not in record and not table_of(model).c[column].nullable:
            raise TransferError(f"{where} has no {column!r}")
        value = _coerce(model, column, record.get(column), f"{where}.{column}")
        allowed = ENUMS.get((name, column))
        if allowed is not None and value is not None and value not in allowed:
            raise TransferError(f"{where}.{column} is {str(value)[:30]!r}, not one of "
                                f"{', '.join(sorted(allowed))}")
        if value is not None and (column == "id" or column in refs):
            _check_id(value, f"{where}.{column}")
            value += offsets[name if column == "id" else refs[column]]
            _check_range(value, INT32_RANGE, f"{where}.{column}")
        row[column] = value
    return row


def _check_id(value: int, where: str) -> None:
    if value <= 0:
        raise TransferError(f"{where} is {value}; ids in an export are whole numbers from 1")


def _check_references(data: dict[str, Any], tables: dict[str, list[dict[str, Any]]],
                      offsets: dict[str, int]) -> None:
    """Every id unique in its table and every reference to a row of the same file.

    Ids are shifted past those in use, so a reference that pointed outside the file
    could land on another owner's row: such a file is refused before anything is written.
    """
    ids = {}
    for name, _model, _refs in TABLES:
        seen: set[int] = set()
        for number, row in enumerate(tables[name], 1):
            if row["id"] in seen:
                raise TransferError(f"{name}[{number}].id {row['id'] - offsets[name]} appears "
                                    "twice in the file")
            seen.add(row["id"])
        ids[name] = seen
    for name, _model, refs in TABLES:
        for number, row in enumerate(tables[name], 1):
            for column, target in refs.items():
                value = row.get(column)
                if value is not None and value not in ids[target]:
                    raise TransferError(
                        f"{name}[{number}].{column} {value - offsets[target]} is not the id of "
                        f"any of the file's {target}; every reference must point inside the file")


def _check_range(value: int, bounds: tuple[int, int], where: str) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise TransferError(f"{where} {value} is out of range")


def _coerce(model, column: str, value: Any, where: str) -> Any:
    col = table_of(model).c[column]
    if value is None:
        if col.nullable:
            return None
        raise TransferError(f"{where} may not be empty")
    kind = _python_type(col)
    try:
        if kind is datetime:
            if not isinstance(value, str) or len(value) > 64:
                raise ValueError("not an ISO 8601 date and time")
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError("no time zone")
            return parsed.astimezone(UTC)
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            _check_range(value, INT_RANGE, where)
            return value
        if kind is str and isinstance(value, str):
            return _checked_text(col, value, where)
    except (TypeError, ValueError) as exc:
        raise TransferError(f"{where} is not a valid date and time ({exc})") from exc
    except OverflowError as exc:
        raise TransferError(f"{where} is out of range") from exc
    raise TransferError(f"{where} should be {kind.__name__}, not {type(value).__name__}")


def _checked_text(col, value: str, where: str) -> str:
    """Text a column can hold on every database: within its length, no NUL, no lone
    surrogate (PostgreSQL refuses both, SQLite would store what no view can show)."""
    length = getattr(col.type, "length", None)
    if length is not None and len(value) > length:
        raise TransferError(f"{where} is {len(value):,} characters; the limit is {length:,}")
    if "\x00" in value:
        raise TransferError(f"{where} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise TransferError(f"{where} contains a lone surrogate (broken text)") from None
    return value


def _python_type(col) -> type:
    """The Python type a column holds (SQLModel's AutoString says ``object``)."""
    column_type = getattr(col.type, "impl", col.type)
    if isinstance(column_type, String):
        return str
    try:
        return column_type.python_type
    except NotImplementedError:
        return object


def _reset_sequences(conn: DBConnection) -> None:
    """PostgreSQL: ids inserted explicitly do not move the id sequences on; do it."""
    if conn.dialect.name != "postgresql":
        return
    for _name, model, _refs in TABLES:
        table = table_of(model).name
        conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f"GREATEST((SELECT MAX(id) FROM \"{table}\"), 1))"
        ))
