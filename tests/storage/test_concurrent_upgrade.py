"""Several workers starting at once on an empty PostgreSQL database all come up."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from storage.db import current_revision, head_revision, make_engine, upgrade

pytestmark = pytest.mark.real_migrations  # these test Alembic itself (tests/support/templates.py)


def test_simultaneous_upgrades_take_turns(pg_url):
    engines = [make_engine(pg_url) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(upgrade, engines))
    assert {current_revision(engine) for engine in engines} == {head_revision()}
    for engine in engines:
        engine.dispose()
