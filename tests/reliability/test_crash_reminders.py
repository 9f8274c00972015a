"""kill -9 while 1,000 due reminders are being delivered: each arrives exactly once.

One trial: a database holds 1,000 reminders that came due while the bot was down.
``plnbot console`` (whose start-up sweep is the catch-up) is killed at a seeded random
moment, then restarted until nothing is due. Every reminder must end up delivered and
in exactly one outbox message; a printed message may repeat only if it was the one in
flight when the process died (stdout cannot join the transaction).
"""

import json
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from bot.config import Settings
from storage import repo
from storage.db import make_engine, upgrade
from storage.models import Reminder
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

REMINDERS = 1_000
TRIALS = 20

pytestmark = pytest.mark.crash  # `make test-crash`


def seed(path) -> None:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        owner = repo.get_or_create_owner(session, external_ref="local",
                                         settings=Settings(_env_file=None), now=now)
        session.add_all(
            Reminder(owner_id=owner.id, text=f"reminder {i}", created_at=now - timedelta(days=2),
                     due_at=now - timedelta(hours=1, seconds=i))
            for i in range(REMINDERS))
        session.commit()
    engine.dispose()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash-reminders")
    env = plnbot_env(folder)
    template = folder / "template.sqlite3"
    seed(template)
    probe = folder / "probe.sqlite3"
    checkpoint_and_copy(template, probe)
    once = timed_run(["console", "--json", "--db", f"sqlite:///{probe}"], env=env,
                     stdout_path=folder / "probe.out")
    return env, template, once


def outbox_reminder_ids(path) -> Counter:
    with sqlite3.connect(path) as db:
        rows = db.execute("select payload_json from outboxmessage where kind='reminder'")
        return Counter(i for (payload,) in rows for i in json.loads(payload)["reminder_ids"])


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_during_reminder_delivery_delivers_each_once(scenario, trial, tmp_path):
    env, template, once_seconds = scenario
    db = tmp_path / "trial.sqlite3"
    checkpoint_and_copy(template, db)
    out = tmp_path / "out.jsonl"
    console = ["console", "--json", "--db", f"sqlite:///{db}"]
    run_and_kill(console, env=env, stdout_path=out, delay=seeded_delays(7, TRIALS,
                                                                        once_seconds)[trial])
    restart_until_done(console, env=env, stdout_path=out, remaining=lambda: undelivered(db))
    assert integrity_ok(db)
    in_outbox = outbox_reminder_ids(db)
    assert len(in_outbox) == REMINDERS and max(in_outbox.values()) == 1
    printed = Counter(tuple(m["reminder_ids"]) for m in messages(out) if m["kind"] == "reminder")
    assert {i for ids in printed for i in ids} == set(in_outbox)
    assert sum(count - 1 for count in printed.values()) <= 1
