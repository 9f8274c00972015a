"""Fixtures the tests of ``bot/`` share."""

from __future__ import annotations

import pytest

from bot.app import open_database
from tests.conftest import make_settings
from tests.support.connected import KEY
from tests.support.fakes import FakeClock, FakeSurface


@pytest.fixture
def world(database_url):
    """(clock, settings with ``PLNBOT_SECRET_KEY``, engine, chat surface) for owners who
    connect accounts by chat (``tests.support.connected.owner_app``)."""
    clock = FakeClock()
    settings = make_settings(PLNBOT_SECRET_KEY=KEY)
    engine = open_database(settings, database_url)
    surface = FakeSurface()
    yield clock, settings, engine, surface
    engine.dispose()
