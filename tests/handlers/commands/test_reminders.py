"""remind / reminders / done / snooze / cancel through the chat, against real SQLite."""

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from storage.models import Reminder
from tests.support.chat import say, say_one
from tests.support.factories import arrival, mastodon_person
from tests.support.owner import set_owner


def rows(app) -> list[Reminder]:
    with Session(app.engine) as session:
        return list(session.exec(select(Reminder).order_by(Reminder.id)))


async def test_remind_me_stores_utc_from_the_owners_zone(app, clock):
    set_owner(app, tz="America/Chicago")
    reply = await say_one(app, "remind me tomorrow 9am call the district office")
    assert reply.kind == "reply"
    assert "Tue 3 Nov 2026 09:00 (America/Chicago)" in reply.text
    [row] = rows(app)
    assert row.due_at.replace(tzinfo=UTC) == datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    assert row.text == "call the district office" and row.contact_id is None


async def test_remind_about_a_person_resolves_them(app, surface):
    await app.handle(arrival(mastodon_person("Amara Okafor", acct="amara@school.social")))
    surface.pop()
    reply = await say_one(app, "remind amara next monday ask about the robotics club")
    assert "Amara Okafor" in reply.text and "Mon 9 Nov 2026 09:00" in reply.text
    assert rows(app)[0].contact_id is not None


@pytest.mark.parametrize(("line", "says"), [
    ("remind", "Say who"),
    ("remind me", "Say when"),
    ("remind me whenever you like", "I can't read"),
    ("remind me 2020-01-01 old news", "in the past"),
    ("remind me tomorrow", "Say what to remind you about"),
    ("remind nobody tomorrow hello", "I don't know anyone"),
    ("remind me tomorrow " + "x" * 1200, "the limit is 1000"),
])
async def test_remind_errors_change_nothing_and_show_usage(app, line, says):
    reply = await say_one(app, line)
    assert reply.kind == "error"
    assert says in reply.text
    assert reply.fields["usage"].startswith("remind <person|me> <when>")
    assert rows(app) == []


async def test_reminders_lists_open_and_delivered(app, clock, surface):
    await say_one(app, "remind me in 1 hour first")
    await say_one(app, "remind me every friday second")
    clock.advance(hours=1)
    await app.sweep()
    surface.pop()
    reply = await say_one(app, "reminders")
    assert "first" in reply.text and "delivered" in reply.text
    assert "every Friday" in reply.text
    assert [r["status"] for r in reply.fields["reminders"]] == ["delivered", "open"]


async def test_done_snooze_cancel_on_a_delivered_reminder(app, clock, surface):
    await say_one(app, "remind me in 1 hour read the report")
    clock.advance(hours=1)
    await app.sweep()
    [delivered] = surface.pop()
    reminder_id = delivered.fields["reminder_ids"][0]
    reply = await say_one(app, f"snooze {reminder_id} in 2 hours")
    assert "Snoozed" in reply.text
    clock.advance(hours=2)
    await app.sweep()
    [again] = surface.pop()
    assert again.fields["reminder_ids"] == [reminder_id]
    assert (await say_one(app, f"done #{reminder_id}")).text == (
        f"Done: reminder #{reminder_id}, \u201cread the report\u201d.")
    assert rows(app)[0].status == "done"
    error = await say_one(app, f"cancel {reminder_id}")
    assert error.kind == "error" and "already done" in error.text


async def test_snoozing_a_repeating_reminder_makes_a_one_off_copy(app, clock):
    first = await say_one(app, "remind me every friday plan lessons")
    reply = await say_one(app, f"snooze {first.fields['reminder_id']} tomorrow 10:00")
    series, copy = rows(app)
    assert copy.id == reply.fields["reminder_id"] and copy.recurrence is None
    assert series.recurrence == "weeks:1" and series.status == "open"


async def test_cancel_stops_a_repeating_reminder(app, clock, surface):
    first = await say_one(app, "remind me every day stretch")
    await say_one(app, f"cancel {first.fields['reminder_id']}")
    clock.advance(days=3)
    await app.sweep()
    assert surface.pop() == []


@pytest.mark.parametrize(("line", "says"), [
    ("done", "Give one reminder number"),
    ("done x", "Give the reminder's number"),
    ("done 999", "There is no reminder #999"),
    ("snooze 1", "Say until when"),
    ("snooze 1 whenever", "I can't read"),
    ("snooze 1 2020-01-01", "in the past"),
    ("snooze 1 every day", "not a repeat"),
    ("cancel 1 2", "Give one reminder number"),
])
async def test_reminder_id_errors(app, line, says):
    await say_one(app, "remind me tomorrow something")
    before = [(r.status, r.due_at) for r in rows(app)]
    reply = await say_one(app, line)
    assert reply.kind == "error" and says in reply.text and "Usage:" in reply.text
    assert [(r.status, r.due_at) for r in rows(app)] == before


async def test_another_owners_reminder_is_invisible(app, surface):
    from tests.support.factories import command

    await app.dispatcher.dispatch(command("remind me tomorrow secret", owner_ref="someone-else"))
    other_id = rows(app)[0].id
    replies = await say(app, f"done {other_id}")
    assert replies[0].kind == "error" and "no reminder" in replies[0].text
