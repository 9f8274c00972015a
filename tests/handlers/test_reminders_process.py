"""Exactly-once delivery across a real crash: `plnbot console` dies right after the
sweep committed (reminders marked delivered, message in the outbox) and before it
delivered anything; the restart delivers the message once, a third start nothing."""

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from bot.app import open_database
from storage.models import Owner, Reminder
from tests.conftest import make_settings
from tests.support.cli import json_messages, run_plnbot


def seed_due_reminders(db_url: str, count: int) -> None:
    engine = open_database(make_settings(), db_url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        owner = Owner(external_ref="local", created_at=now - timedelta(days=30))
        session.add(owner)
        session.flush()
        for n in range(count):
            session.add(Reminder(owner_id=owner.id, text=f"task {n}", created_at=now,
                                 due_at=now - timedelta(hours=n + 1)))
        session.commit()
    engine.dispose()


def test_crash_between_commit_and_delivery_delivers_exactly_once(db_url):
    seed_due_reminders(db_url, 3)
    crashed = run_plnbot("console", "--json", "--db", db_url,
                         env={"PLNBOT_CRASH_AT": "after-sweep-commit"})
    assert crashed.returncode == 99
    assert json_messages(crashed.stdout) == []

    restarted = run_plnbot("console", "--json", "--db", db_url, stdin="reminders\n")
    assert restarted.returncode == 0, restarted.stderr
    messages = json_messages(restarted.stdout)
    delivered = [m for m in messages if m["kind"] == "reminder"]
    assert len(delivered) == 1
    assert sorted(delivered[0]["reminder_ids"]) == [1, 2, 3]
    assert delivered[0]["catch_up"] is True
    assert messages[-1]["kind"] == "reply" and "delivered" in messages[-1]["text"]

    again = run_plnbot("console", "--json", "--db", db_url)
    assert [m for m in json_messages(again.stdout) if m["kind"] == "reminder"] == []
