"""Test databases cloned from the migrated template (tests/support/templates.py) are the
databases Alembic builds: the same schema, at the same revision."""

import shutil
import sqlite3
import subprocess
import uuid
from contextlib import closing

import pytest
from sqlalchemy import create_engine, text

from storage.db import HEAD_REVISION, make_engine, stored_revision, upgrade
from tests.support.templates import MigratedTemplates

pytestmark = pytest.mark.real_migrations  # compares the clone with a real upgrade


def sqlite_schema(path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                          "ORDER BY name").fetchall()


def test_a_cloned_sqlite_database_is_the_migrated_one(tmp_path):
    migrated, cloned = tmp_path / "migrated.sqlite3", tmp_path / "cloned.sqlite3"
    upgrade(make_engine(f"sqlite:///{migrated}"))
    engine = make_engine(f"sqlite:///{cloned}")
    MigratedTemplates(tmp_path, upgrade).upgrade(engine)
    assert stored_revision(engine) == HEAD_REVISION
    engine.dispose()
    assert sqlite_schema(cloned) == sqlite_schema(migrated)


@pytest.fixture
def empty_pg_databases(pg_url):
    """Three more empty PostgreSQL databases on ``pg_url``'s server, dropped afterwards."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    names = [f"plnbot_test_{uuid.uuid4().hex[:12]}" for _ in range(3)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield [pg_url.rsplit("/", 1)[0] + "/" + name for name in names]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pg_schema(url: str) -> list[str]:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(["pg_dump", "--schema-only", "--dbname", plain],
                          capture_output=True, text=True, check=True).stdout
    return [line for line in dump.splitlines() if not line.startswith("\\")]


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_a_cloned_postgresql_database_is_the_migrated_one(tmp_path, empty_pg_databases):
    migrated, first, cloned = empty_pg_databases
    upgrade(make_engine(migrated))
    templates = MigratedTemplates(tmp_path, upgrade)
    engines = [make_engine(first), make_engine(cloned)]
    for engine in engines:  # the first is migrated for real and dumped, the second replays
        templates.upgrade(engine)
    assert stored_revision(engines[1]) == HEAD_REVISION
    for engine in engines:
        engine.dispose()
    assert pg_schema(cloned) == pg_schema(migrated)
