"""Fresh test databases cloned from one migrated template instead of migrated one by one.

Running every Alembic migration costs ~0.3 s of CPU per database (most of it building
the DDL in Python), and hundreds of tests start from an empty database. The bot's own
start-up path (``ensure_schema``) upgrades an empty database to the head revision; in
tests that step copies a database migrated once per session (per xdist worker) instead:
SQLite through SQLite's online backup API, PostgreSQL by replaying the template's
schema as ``pg_dump`` prints it. Anything else (an older revision, a database that
already has tables, another engine) still runs the real migrations, and so do tests
marked ``real_migrations`` (the tests of the migrations themselves).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from storage.db import MIGRATION_LOCK, make_engine

Upgrade = Callable[..., None]


class MigratedTemplates:
    """``upgrade(engine)`` that clones a migrated template into an empty database."""

    def __init__(self, folder: Path, real_upgrade: Upgrade) -> None:
        self.folder = folder
        self.real_upgrade = real_upgrade
        self._sqlite: Path | None = None
        self._pg_schema: dict[str, str | None] = {}

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        dialect = engine.dialect.name
        if revision != "head" or dialect not in ("sqlite", "postgresql") or _has_tables(engine):
            self.real_upgrade(engine, revision)
        elif dialect == "sqlite":
            self._clone_sqlite(engine)
        else:
            self._clone_postgres(engine)

    def _clone_sqlite(self, engine: Engine) -> None:
        if self._sqlite is None:
            self._sqlite = self._migrate_sqlite_template()
        with closing(sqlite3.connect(self._sqlite)) as source, engine.connect() as target:
            source.backup(target.connection.driver_connection)

    def _migrate_sqlite_template(self) -> Path:
        path = self.folder / "template.sqlite3"
        template = make_engine(f"sqlite:///{path}")
        self.real_upgrade(template)
        with template.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        template.dispose()
        return path

    def _clone_postgres(self, engine: Engine) -> None:
        """The first empty database of a server is migrated for real and its schema
        dumped; the next ones replay that dump (or migrate, where pg_dump is missing)."""
        server = engine.url.set(database="").render_as_string(hide_password=False)
        if server not in self._pg_schema:
            self.real_upgrade(engine)
            self._pg_schema[server] = _dump_schema(engine)
        elif (schema := self._pg_schema[server]) is None:
            self.real_upgrade(engine)
        else:
            _run_script(engine, schema)


def _dump_schema(engine: Engine) -> str | None:
    """``pg_dump``'s schema script of a migrated database, with its Alembic revision."""
    if shutil.which("pg_dump") is None:
        return None
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "--no-privileges",
                           "--dbname", url], capture_output=True, text=True, check=True)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    # psql meta-commands (``\restrict``) are for psql only
    lines = [line for line in dump.stdout.splitlines() if not line.startswith("\\")]
    # a test database need not wait for its DDL to reach the disk
    return "\n".join(["SET synchronous_commit = off;", *lines,
                      f"INSERT INTO public.alembic_version VALUES ('{version}');"])


def _has_tables(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())


def _run_script(engine: Engine, script: str) -> None:
    """Run ``script`` on a connection of its own (pg_dump's ``SET``s stay with it), under
    the lock real upgrades take, unless another engine filled the database meanwhile."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        tables = conn.execute("SELECT count(*) FROM information_schema.tables "
                              "WHERE table_schema = 'public'").fetchone()[0]
        if not tables:
            conn.execute(script)
        conn.commit()
    finally:
        raw.invalidate()  # never handed back to the pool with pg_dump's settings
