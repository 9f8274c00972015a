"""Shared fixtures: a real SQLite database per test, an app wired to a fake surface,
and (where TEST_DATABASE_URL is set) a fresh PostgreSQL database per test."""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlmodel import create_engine as _create_engine

import storage.db
from bot.app import App, open_database
from bot.config import Settings
from tests.support import factories
from tests.support.fakes import FakeClock, FakeSurface
from tests.support.templates import MigratedTemplates

ROOT = Path(__file__).resolve().parent.parent

# Property tests (hypothesis) run the same examples on every run unless one asks to
# explore (PLNBOT_FUZZ_EXAMPLES=N): a CI run that fails can be repeated anywhere, and a
# search for new failures is a deliberate, longer run (README "Hostile data").
EXPLORING = "PLNBOT_FUZZ_EXAMPLES" in os.environ
settings.register_profile("plnbot", derandomize=not EXPLORING)
settings.load_profile("plnbot")
RECORDED = Path(__file__).parent / "fixtures" / "recorded"


# speed: an empty database the bot migrates on start is cloned from one migrated once per
# session (see tests/support/templates.py); tests marked real_migrations migrate for real.
@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory) -> MigratedTemplates:
    return MigratedTemplates(tmp_path_factory.mktemp("templates"), storage.db.upgrade)


@pytest.fixture(autouse=True)
def _clone_migrated_databases(request, monkeypatch) -> None:
    if request.node.get_closest_marker("real_migrations") is None:
        templates = request.getfixturevalue("migrated_templates")
        monkeypatch.setattr(storage.db, "upgrade", templates.upgrade)


@pytest.fixture(autouse=True)
def _same_ids_whatever_ran_before(monkeypatch) -> None:
    """The factories number people from 1000 in every test, so a test sees the same ids
    (and so the same draft choices, which follow the id) whichever tests its xdist worker
    ran before it: a draft test once failed in CI only, with a different person's id."""
    monkeypatch.setattr(factories, "_ids", itertools.count(1000))


class _OneDialectPerDatabaseKind:
    """Every test opens its own database, so its own engine, and SQLAlchemy caches each
    statement's compiled SQL per engine's dialect: without this, every test compiled every
    statement it ran again (about a seventh of the in-process tests' time). Engines of the
    same kind (sqlite, postgresql+psycopg) here share one dialect and one compiled cache,
    as the one engine of a running plnbot does across its whole life."""

    shared: dict[str, tuple] = {}

    @classmethod
    def create_engine(cls, url, **options):
        engine = _create_engine(url, **options)
        kind = engine.url.drivername
        if kind not in cls.shared:
            cls.shared[kind] = (engine.dialect, engine._compiled_cache)
        dialect, cache = cls.shared[kind]
        engine.dialect = engine.pool._dialect = dialect
        engine._compiled_cache = cache
        return engine


@pytest.fixture(autouse=True)
def _statements_compiled_once(monkeypatch) -> None:
    monkeypatch.setattr(storage.db, "create_engine", _OneDialectPerDatabaseKind.create_engine)


def make_settings(**values) -> Settings:
    """Settings from explicit values only (never the developer's .env)."""
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings; files the bot writes (digest charts) go under ``tmp_path``."""
    return make_settings(PLNBOT_DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plnbot.sqlite3'}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def surface() -> FakeSurface:
    return FakeSurface()


@pytest.fixture
def app(settings, db_url, clock, surface) -> App:
    engine = open_database(settings, db_url)
    return App(settings=settings, engine=engine, surface=surface, clock=clock)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database (skipped
    with a reason when TEST_DATABASE_URL is unset)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'plnbot.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(database_url):
    """A migrated engine on each of ``database_url``'s databases (storage-level tests)."""
    from storage.db import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: no PostgreSQL server to test against")
    from sqlalchemy.engine import make_url

    url = make_url(base)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"plnbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
