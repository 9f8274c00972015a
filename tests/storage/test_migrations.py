"""Migrations build the schema from empty on SQLite and on PostgreSQL."""

import pytest
from sqlalchemy import inspect

from storage.db import (
    HEAD_REVISION,
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
    stored_revision,
    upgrade,
)
from storage.models import SQLModel
from storage.search import include_name

EXPECTED = set(SQLModel.metadata.tables)

pytestmark = pytest.mark.real_migrations  # these test Alembic itself (tests/support/templates.py)


def _check(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert EXPECTED <= set(inspect(engine).get_table_names())
    upgrade(engine)  # a second upgrade is a no-op
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_upgrade_from_empty_on_sqlite(db_url):
    _check(db_url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_upgrade_from_empty_on_postgresql(pg_url):
    _check(pg_url)


@pytest.mark.filterwarnings("ignore:.*expression-based index")  # lower(name): compared by hand
def test_models_match_migrations(db_url):
    """Autogenerate finds nothing to add: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_migrations_form_one_line():
    """Two branches adding migrations at once must be re-chained before landing."""
    from alembic.script import ScriptDirectory

    from storage.db import MIGRATIONS_DIR

    assert len(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()) == 1


def test_the_start_up_shortcut_knows_the_newest_migration(tmp_path):
    """``ensure_schema`` skips Alembic when the database is at HEAD_REVISION: a new
    migration must update it, or databases would never be upgraded on start."""
    assert HEAD_REVISION == head_revision()
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert stored_revision(engine) is None
    ensure_schema(engine)
    assert stored_revision(engine) == current_revision(engine) == HEAD_REVISION


def _seed_two_people(engine) -> int:
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, Table
    from sqlmodel import Session

    from storage import search
    from storage.models import Contact, Owner

    now = datetime(2026, 11, 2, tzinfo=UTC)
    # the owner row as the older schema has it: columns later migrations add are left out
    present = {column["name"] for column in inspect(engine).get_columns("owner")}
    values = Owner(external_ref="local", created_at=now).model_dump(exclude={"id"})
    with engine.begin() as conn:
        owner_id = conn.execute(Owner.__table__.insert().values(
            {k: v for k, v in values.items() if k in present})).inserted_primary_key[0]
    contacts = [Contact(owner_id=owner_id, name="Zoë Ångström", created_at=now,
                        bio="Physics teacher"),
                Contact(owner_id=owner_id, name="Ravi Patel", created_at=now,
                        bio="Head of maths; met Zoë")]
    present = {column["name"] for column in inspect(engine).get_columns("contact")}
    with Session(engine) as session:
        conn = session.connection()
        older = Table("contact", MetaData(), autoload_with=conn)  # as that schema has it
        conn.execute(older.insert(), [
            {k: v for k, v in c.model_dump(exclude={"id"}).items() if k in present}
            for c in contacts])
        search.rebuild(conn)  # as the older schema's commit indexed them
        session.commit()
        return owner_id


def _names(engine, owner_id: int, query: str, **kwargs) -> list[int]:
    from storage import search

    with engine.connect() as conn:
        return search.search(conn, owner_id=owner_id, query=query, **kwargs)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_an_existing_database_gains_the_name_index_and_can_go_back(request, database):
    """0008 fills SQLite's name-and-handle index from the words already indexed (and
    does nothing on PostgreSQL); back at 0007, lookups use the main index again."""
    from alembic import command

    from storage.db import _alembic_config

    engine = make_engine(request.getfixturevalue("db_url" if database == "sqlite"
                                                 else "pg_url"))
    upgrade(engine, "0007_search_prefixes")
    owner_id = _seed_two_people(engine)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert ("contact_search_names" in tables) == (database == "sqlite")
    assert _names(engine, owner_id, "zoe", columns=("name",)) == [1]
    assert _names(engine, owner_id, "zoe") == [1, 2]
    command.downgrade(_alembic_config(engine), "0007_search_prefixes")
    assert "contact_search_names" not in set(inspect(engine).get_table_names())
    assert _names(engine, owner_id, "zoe", columns=("name",)) == [1]
    upgrade(engine)
    assert _names(engine, owner_id, "angstrom", columns=("name",)) == [1]
    engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_upgrading_keeps_every_account_and_allows_a_second_one_per_platform(request, database):
    """0014: the accounts stored under the one-per-platform rule all stay, with their
    state; then an owner may add a second server, never the same one twice; going back
    works while each owner has one account per platform."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import Session

    from storage.db import _alembic_config
    from storage.models import Account, Owner

    engine = make_engine(request.getfixturevalue("db_url" if database == "sqlite"
                                                 else "pg_url"))
    upgrade(engine, "0013_profile_backlog")
    with Session(engine) as session:  # the 0013 schema has every column of both
        owner = Owner(external_ref="discord:1", created_at=datetime(2026, 1, 1, tzinfo=UTC))
        session.add(owner)
        session.flush()
        session.add_all([Account(owner_id=owner.id, platform="discord", external_id="111",
                                 handle="Class", baseline_done=True),
                         Account(owner_id=owner.id, platform="mastodon", cursor="c1")])
        session.commit()
    insert = text("INSERT INTO account (owner_id, platform, external_id, handle, baseline_done) "
                  "VALUES (1, 'discord', :external, :handle, false)")
    upgrade(engine)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT platform, external_id, handle, baseline_done, cursor "
                                 "FROM account ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [("discord", "111", "Class", True, None),
                                            ("mastodon", "", "", False, "c1")]
        conn.execute(insert, {"external": "222", "handle": "PLN"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"external": "222", "handle": "PLN again"})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM account WHERE external_id = '222'"))
    command.downgrade(_alembic_config(engine), "0013_profile_backlog")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM account")).scalar() == 2
    upgrade(engine)
    engine.dispose()
