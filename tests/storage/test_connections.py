"""Bulk writes of the sync engine: rows given with shared values store what full rows do."""

from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import Session

from storage import connections as store
from storage.models import Contact, Owner, table_of

AWKWARD = ["it's", "Zoë 🍎 \"quoted\"", "", "semi; DROP TABLE contact; --", "a\x00b", "?",
           "line\nbreak", "x" * 4000]


def contacts(session: Session, owner_id: int, how_met: str) -> list[tuple]:
    """The rows as stored (on SQLite with each value's storage class)."""
    types = (", typeof(created_at), typeof(profile_pending), typeof(owner_id), typeof(bio)"
             if session.connection().dialect.name == "sqlite" else "")
    return [tuple(row) for row in session.connection().execute(text(
        "SELECT owner_id, name, bio, location, merged_into_id, created_at, profile_pending"
        f"{types} FROM contact WHERE how_met = :how_met ORDER BY id"), {"how_met": how_met})]


def test_shared_values_store_what_each_row_carrying_them_stores(engine):
    """Shared values SQLite can take as literals are written into the statement; any
    other (NUL, a lone surrogate) is bound as before: either way the same rows."""
    with Session(engine) as session:
        owner = Owner(external_ref="bulk", created_at=datetime(2026, 1, 1, tzinfo=UTC))
        session.add(owner)
        session.flush()
        table = table_of(Contact)
        for n, value in enumerate(AWKWARD):
            shared = {"owner_id": owner.id, "bio": value, "location": None,
                      "merged_into_id": None, "profile_pending": True,
                      "created_at": datetime(2026, 11, 2, 9, 0, tzinfo=UTC)}
            if "\x00" in value and engine.dialect.name == "postgresql":
                shared["bio"] = "no NUL in PostgreSQL text"
            names = [{"name": f"P{n}-{i}"} for i in range(3)]
            store.insert_rows(session, table, [
                {**row, "how_met": f"one-{n}"} for row in names], shared={**shared})
            store.insert_rows(session, table, [
                {**row, **shared, "how_met": f"all-{n}"} for row in names])
            shared_rows = contacts(session, owner.id, f"one-{n}")
            assert len(shared_rows) == 3
            assert shared_rows == contacts(session, owner.id, f"all-{n}"), value
        session.rollback()


def test_a_value_only_some_rows_have_falls_back_to_the_shared_one(engine):
    with Session(engine) as session:
        owner = Owner(external_ref="bulk", created_at=datetime(2026, 1, 1, tzinfo=UTC))
        session.add(owner)
        session.flush()
        store.insert_rows(session, table_of(Contact), [
            {"name": "Ann"}, {"name": "Bo", "location": "Leeds", "profile_pending": True}],
            shared={"owner_id": owner.id, "how_met": "mixed", "location": None,
                    "profile_pending": False, "created_at": datetime(2026, 11, 2, tzinfo=UTC)})
        rows = session.connection().execute(text(
            "SELECT name, location, profile_pending FROM contact WHERE how_met = 'mixed' "
            "ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [("Ann", None, False), ("Bo", "Leeds", True)]
        session.rollback()
