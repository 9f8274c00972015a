"""kill -9 during a first sync big enough to build its indexes at the end.

A first sync of at least ``storage.connections.REBUILD_AT`` followers drops the plain
indexes of the contact, handle, connection and event tables and builds them again at
the end of its transaction. Killed at a seeded random moment, the database must come
back whole: integrity check passed, every index there as the schema defines it, nobody
stored; and the same sync run again stores everyone once.
"""

import json
import sqlite3

import pytest

from storage.connections import REBUILD_AT
from tests.reliability.crash import (
    checkpoint_and_copy,
    integrity_ok,
    plnbot_env,
    run_and_kill,
    seeded_delays,
    timed_run,
)

FOLLOWERS = REBUILD_AT + 10_000
TRIALS = 4

pytestmark = pytest.mark.crash  # `make test-crash`


def indexes(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("select name, tbl_name, sql from sqlite_master where type = 'index' "
                          "order by name").fetchall()


def counts(path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {table: db.execute(f"select count(*) from {table}").fetchone()[0]
                for table in ("contact", "handle", "connection", "connectionevent")}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash-first-sync")
    env = plnbot_env(folder)
    followers = folder / "followers.json"
    followers.write_text(json.dumps({"data": [
        {"id": str(i), "username": f"user{i}", "name": f"Person {i}",
         "description": "Year 4 teacher" if i % 2 else ""} for i in range(1, FOLLOWERS + 1)]}))
    empty = folder / "empty.sqlite3"
    timed_run(["db", "upgrade", "--db", f"sqlite:///{empty}"], env=env,
              stdout_path=folder / "upgrade.out")
    probe = folder / "probe.sqlite3"
    checkpoint_and_copy(empty, probe)
    full = timed_run(["sync", "--platform", "x", "--snapshot", str(followers), "--db",
                      f"sqlite:///{probe}"], env=env, stdout_path=folder / "probe.out")
    assert counts(probe)["connectionevent"] == FOLLOWERS
    assert indexes(probe) == indexes(empty)
    return env, empty, followers, full


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_during_a_big_first_sync_keeps_every_index(scenario, trial, tmp_path):
    env, empty, followers, full_seconds = scenario
    db = tmp_path / "trial.sqlite3"
    checkpoint_and_copy(empty, db)
    sync = ["sync", "--platform", "x", "--snapshot", str(followers), "--db", f"sqlite:///{db}"]
    delay = seeded_delays(2026, TRIALS, full_seconds)[trial]
    run_and_kill(sync, env=env, stdout_path=tmp_path / "out", delay=delay)
    assert integrity_ok(db)
    assert indexes(db) == indexes(empty)
    assert set(counts(db).values()) in ({0}, {FOLLOWERS})  # all or nothing
    assert run_and_kill(sync, env=env, stdout_path=tmp_path / "out", delay=None) == 0
    assert integrity_ok(db)
    assert indexes(db) == indexes(empty)
    assert counts(db) == dict.fromkeys(counts(db), FOLLOWERS)
