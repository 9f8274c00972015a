"""kill -9 during a 10,000-follower sync: after a restart nothing is lost or doubled.

One trial: a database holding a 10,000-follower baseline gets a sync with 1% churn
(100 arrive, 100 leave); the process is killed at a seeded random moment, then the
same sync and a console catch-up run to completion. The database must pass its
integrity check and hold exactly one gained event, one draft and one outbox message
per newcomer that got a draft (a flood of arrivals gets drafts for the first ones only),
one lost event per leaver, and every message must have been delivered.
A message in flight when the process died may be printed once more (stdout cannot be
part of the transaction); at most one such repeat per kill is allowed and it is the
only kind of repeat allowed.
"""

import json
import sqlite3
from collections import Counter

import pytest

from tests.reliability.crash import (
    checkpoint_and_copy,
    integrity_ok,
    messages,
    plnbot_env,
    restart_until_done,
    run_and_kill,
    seeded_delays,
    timed_run,
    undelivered,
)

FOLLOWERS = 10_000
CHURN = 100
TRIALS = 20

pytestmark = pytest.mark.crash  # `make test-crash`


def x_users(ids) -> dict:
    return {"data": [{"id": str(i), "username": f"user{i}", "name": f"Person {i}",
                      "description": "Year 4 teacher #edtech" if i % 2 else "Nurse"}
                     for i in ids]}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash-sync")
    env = plnbot_env(folder)
    base = folder / "base.json"
    base.write_text(json.dumps(x_users(range(1, FOLLOWERS + 1))))
    churned = folder / "churned.json"
    churned.write_text(json.dumps(x_users(range(CHURN + 1, FOLLOWERS + CHURN + 1))))
    template = folder / "template.sqlite3"
    timed_run(["sync", "--platform", "x", "--snapshot", str(base), "--db",
               f"sqlite:///{template}"], env=env, stdout_path=folder / "base.out")
    probe = folder / "probe.sqlite3"
    checkpoint_and_copy(template, probe)
    full = timed_run(["sync", "--platform", "x", "--snapshot", str(churned), "--json", "--db",
                      f"sqlite:///{probe}"], env=env, stdout_path=folder / "probe.out")
    return folder, env, template, churned, full


def check_database(path) -> tuple[Counter, int]:
    assert integrity_ok(path)
    with sqlite3.connect(path) as db:
        events = Counter(kind for (kind,) in db.execute("select kind from connectionevent"))
        duplicates = db.execute(
            "select count(*) from (select connection_id, kind, count(*) c from connectionevent "
            "group by connection_id, kind having c > 1)").fetchone()[0]
        assert duplicates == 0
        drafts = db.execute("select count(*) from draft").fetchone()[0]
        assert 0 < drafts <= CHURN
        welcomes = db.execute("select count(*) from outboxmessage where kind='new_connection'")
        assert welcomes.fetchone()[0] == drafts
        per_contact = db.execute(
            "select max(c) from (select count(*) c from draft group by contact_id)").fetchone()[0]
        assert per_contact == 1
        assert db.execute(
            "select count(*) from outboxmessage where status != 'sent'").fetchone()[0] == 0
    return events, drafts


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_during_sync_loses_and_doubles_nothing(scenario, trial, tmp_path):
    folder, env, template, churned, full_seconds = scenario
    db = tmp_path / "trial.sqlite3"
    checkpoint_and_copy(template, db)
    out = tmp_path / "out.jsonl"
    delay = seeded_delays(2026, TRIALS, full_seconds)[trial]
    sync = ["sync", "--platform", "x", "--snapshot", str(churned), "--json", "--db",
            f"sqlite:///{db}"]
    run_and_kill(sync, env=env, stdout_path=out, delay=delay)
    assert run_and_kill(sync, env=env, stdout_path=out, delay=None) == 0
    restart_until_done(["console", "--json", "--db", f"sqlite:///{db}"], env=env,
                       stdout_path=out, remaining=lambda: undelivered(db))
    events, drafts = check_database(db)
    assert events["gained"] == FOLLOWERS + CHURN and events["lost"] == CHURN
    printed = Counter(m["draft_id"] for m in messages(out) if m["kind"] == "new_connection")
    assert len(printed) == drafts
    assert sum(count - 1 for count in printed.values()) <= 1
