"""The single-owner App: what a periodic sweep does besides delivering."""

from pathlib import Path

from storage.db import AUTOCHECKPOINT_PAGES
from tests.support.chat import say


async def test_a_sweep_moves_the_write_ahead_log_into_the_database_file(app, db_url):
    """Commands leave their writes in the WAL (the automatic checkpoint, which a
    command's commit would pay for, waits for ~40 MiB); the sweep copies them over."""
    db_file = Path(db_url.removeprefix("sqlite:///"))
    with app.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_PAGES
    for n in range(20):
        await say(app, f"remind me in {n + 2} days call the district office")
    before = db_file.stat().st_size
    await app.sweep()
    assert db_file.stat().st_size > before  # the pages reached the database file
