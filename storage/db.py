"""Engine, sessions and migrations.

SQLite is the embedded default (a file in the user's data directory, WAL mode,
foreign keys on); any SQLAlchemy URL works, PostgreSQL being the scale-out path.
The schema is owned by Alembic: ``upgrade()`` brings any database to the newest
revision, and ``demo``/``console``/``run`` call it on start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.exc import NoSuchModuleError as NoSuchDialect
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseError(Exception):
    """The database URL is unusable or the database cannot be reached."""


def default_database_url() -> str:
    """A SQLite file in the user's data directory (platformdirs)."""
    from platformdirs import user_data_path

    path = user_data_path("plnbot", appauthor=False) / "plnbot.sqlite3"
    return f"sqlite:///{path}"


AUTOCHECKPOINT_PAGES = 10_000  # ~40 MiB of WAL; see _enable_sqlite_pragmas


def _enable_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # 64 MiB of page cache (the default is 2 MiB): a sync of a large account walks
    # indexes of hundreds of thousands of rows; the memory is only taken when used
    cursor.execute("PRAGMA cache_size=-65536")
    # Checkpoints run after each periodic sweep (``checkpoint``), off the path of a
    # command; the automatic one, which a command's commit pays for (the slowest 1-2 %
    # of `log`s), is only a safety net for when sweeps fall behind (~40 MiB of WAL).
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.close()


def checkpoint(engine: Engine) -> None:
    """Copy SQLite's write-ahead log into the database file without blocking anyone
    (PASSIVE: it stops at pages a reader still needs and finishes next time)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


# "user:password@" after the scheme's "//" (or anywhere, for a URL missing its "://")
PASSWORD_IN_URL = re.compile(r"((?:^|/)[^/@:]*:)[^/]*@")


def describe_url(url: str) -> str:
    """The URL with any password hidden, safe for messages and logs; a URL SQLAlchemy
    cannot read still has whatever sits between "user:" and "@" masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return PASSWORD_IN_URL.sub(r"\1***@", str(url))


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; raise DatabaseError with a readable reason."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a port like "abc" only fails when read
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(
            f"database URL {describe_url(url)!r} is not a valid SQLAlchemy URL "
            "(expected e.g. sqlite:///path/to/plnbot.sqlite3 or postgresql+psycopg://user@host/db)"
        ) from exc
    if parsed.drivername.startswith("postgresql") and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    is_sqlite = parsed.drivername.startswith("sqlite")
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        _ensure_parent_dir(Path(parsed.database))
    try:
        engine = create_engine(parsed, pool_pre_ping=not is_sqlite)
    except (NoSuchDialect, ImportError) as exc:
        raise DatabaseError(
            f"database URL {describe_url(url)!r} names a driver that is not installed "
            f"({parsed.drivername}); use sqlite:///FILE or postgresql+psycopg://…"
        ) from exc
    if is_sqlite:
        event.listen(engine, "connect", _enable_sqlite_pragmas)
    return engine


def _ensure_parent_dir(path: Path) -> None:
    try:
        path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create the folder for the database {path}: {exc}") from exc


def check_connection(engine: Engine) -> None:
    """Open one connection, turning a failure into a DatabaseError."""
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot open the database {describe_url(str(engine.url))}: {reason}"
        ) from exc


def _alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


MIGRATION_LOCK = 7_245_001  # any constant: the PostgreSQL advisory lock of upgrades


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (the newest by default).

    On PostgreSQL, several workers starting at once upgrade one after the other (an
    advisory lock); the later ones find the schema current and do nothing.
    """
    from alembic import command

    check_connection(engine)
    if engine.dialect.name != "postgresql":
        command.upgrade(_alembic_config(engine), revision)
        return
    with engine.connect() as lock:
        lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(_alembic_config(engine), revision)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None, "storage/migrations/versions holds the revisions"
    return head


# The newest migration. Kept here so that starting on an up-to-date database needs no
# Alembic at all (importing it and reading the migration scripts costs ~0.1 s of every
# start); tests/storage/test_migrations.py checks it names Alembic's head.
HEAD_REVISION = "0015_redundant_owner_indexes"


def stored_revision(engine: Engine) -> str | None:
    """The database's migration revision, read with one plain query (None: not set up)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):  # no alembic_version table yet
        return None


def ensure_schema(engine: Engine) -> None:
    """Upgrade only when needed, so start-up stays fast on an up-to-date database."""
    check_connection(engine)
    if stored_revision(engine) != HEAD_REVISION:
        upgrade(engine)
    refresh_statistics(engine)


def refresh_statistics(engine: Engine) -> None:
    """Give SQLite's query planner table statistics (a sampled, millisecond ANALYZE).

    Without them SQLite may pick the single-owner ``owner_id`` index over a
    ``contact_id`` index and scan every row an owner has; PostgreSQL keeps its own
    statistics (autovacuum), so this is SQLite only.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
