"""Delivery of due reminders on the sweep: batching, quiet hours, recurrence, catch-up,
follow-ups. Real SQLite, an injected clock, the fake surface."""

from datetime import UTC, datetime

from sqlmodel import Session, select

from storage.models import OutboxMessage, Reminder
from tests.support.chat import say, say_one
from tests.support.factories import arrival, mastodon_person
from tests.support.owner import set_owner


def delivered(surface) -> list:
    """The reminder messages the owner got (a digest may arrive on its day too)."""
    return [m for m in surface.pop() if m.kind == "reminder"]


def reminder_rows(app) -> list[Reminder]:
    with Session(app.engine) as session:
        return list(session.exec(select(Reminder).order_by(Reminder.id)))


async def test_several_due_together_arrive_as_one_message(app, clock, surface):
    for text in ("water the plants", "call the library", "mark essays"):
        await say_one(app, f"remind me in 2 hours {text}")
    clock.advance(hours=2)
    await app.sweep()
    messages = delivered(surface)
    assert [m.kind for m in messages] == ["reminder"]
    assert messages[0].fields["reminder_ids"] == [r.id for r in reminder_rows(app)]
    assert "water the plants" in messages[0].text and "mark essays" in messages[0].text
    assert {r.status for r in reminder_rows(app)} == {"delivered"}
    await app.sweep()
    clock.advance(hours=5)
    await app.sweep()
    assert delivered(surface) == []


async def test_nothing_is_delivered_before_it_is_due(app, clock, surface):
    await say_one(app, "remind me tomorrow 9am check the post")
    clock.advance(hours=23, minutes=59)
    await app.sweep()
    assert delivered(surface) == []
    clock.advance(minutes=1)
    await app.sweep()
    assert [m.kind for m in delivered(surface)] == ["reminder"]


async def test_quiet_hours_hold_a_late_reminder_until_morning(app, clock, surface):
    set_owner(app, tz="Europe/Berlin", quiet_start="21:00", quiet_end="07:00")
    clock.now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    reply = await say_one(app, "remind me 2026-11-02 23:00 night shift notes")
    assert "quiet hours" in reply.text
    clock.now = datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # 23:00 Berlin
    await app.sweep()
    clock.now = datetime(2026, 11, 3, 5, 59, tzinfo=UTC)  # 06:59 Berlin
    await app.sweep()
    assert delivered(surface) == []
    clock.now = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)  # 07:00 Berlin
    await app.sweep()
    [message] = delivered(surface)
    assert message.kind == "reminder" and "night shift notes" in message.text


async def test_quiet_hours_follow_the_zone_through_a_dst_change(app, clock, surface):
    # New York moves its clocks back on Sunday 1 Nov 2026: 07:00 EST is 12:00 UTC.
    set_owner(app, tz="America/New_York", quiet_start="22:00", quiet_end="07:00")
    clock.now = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    await say_one(app, "remind me 2026-10-31 23:30 pack")  # Sat 23:30 EDT = Sun 03:30 UTC
    clock.now = datetime(2026, 11, 1, 11, 0, tzinfo=UTC)  # 06:00 EST, still quiet
    await app.sweep()
    assert delivered(surface) == []
    clock.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # 07:00 EST
    await app.sweep()
    assert [m.kind for m in delivered(surface)] == ["reminder"]


async def test_recurring_reminder_rolls_forward_and_comes_again(app, clock, surface):
    reply = await say_one(app, "remind me every friday 16:00 write the week's notes")
    reminder_id = reply.fields["reminder_id"]
    clock.now = datetime(2026, 11, 6, 16, 0, tzinfo=UTC)
    await app.sweep()
    [first] = delivered(surface)
    assert first.fields["reminder_ids"] == [reminder_id]
    [row] = reminder_rows(app)
    assert row.status == "open" and row.due_at == datetime(2026, 11, 13, 16, 0, tzinfo=UTC)
    clock.now = datetime(2026, 11, 13, 16, 1, tzinfo=UTC)
    await app.sweep()
    [second] = delivered(surface)
    assert second.idempotency_key != first.idempotency_key


async def test_catch_up_after_downtime_is_one_message_and_recurring_skips_ahead(
        app, clock, surface):
    await say_one(app, "remind me tomorrow renew the licence")
    await say_one(app, "remind me every day stretch")
    await say_one(app, "remind me in 3 days call Sam")
    clock.advance(days=10)  # the bot was down
    await app.sweep()
    [message] = delivered(surface)
    assert message.fields["catch_up"] is True
    assert message.text.startswith("While I was away")
    assert len(message.fields["reminder_ids"]) == 3
    daily = next(r for r in reminder_rows(app) if r.recurrence)
    assert daily.due_at > clock.now
    await app.sweep()
    assert delivered(surface) == []


async def test_a_reminder_about_a_person_names_them(app, clock, surface):
    await app.handle(arrival(mastodon_person("Amara Okafor", acct="amara@school.social")))
    delivered(surface)
    await say_one(app, "remind @amara@school.social in 2 days ask about the robotics club")
    clock.advance(days=2)
    await app.sweep()
    [message] = [m for m in delivered(surface) if m.kind == "reminder"]
    assert "Amara Okafor" in message.text and "robotics club" in message.text
    assert message.fields["reminders"][0]["contact"]["name"] == "Amara Okafor"


async def test_the_same_delivery_is_queued_once_even_if_chosen_twice(app, clock, surface):
    from bot.context import Context
    from handlers.reminders import deliver, due_reminders
    from storage.models import Owner

    await say_one(app, "remind me in 1 hour one")
    clock.advance(hours=1)
    for _ in range(2):  # two workers that both chose the same rows
        with Session(app.engine) as session:
            owner = session.get(Owner, app.owner_id)
            ctx = Context(session=session, owner=owner, settings=app.settings, clock=clock)
            due = due_reminders(session, owner_id=owner.id, now=clock.now)
            for reminder in due:  # the second worker sees them as still open
                reminder.status = "open"
            deliver(ctx, due, now=clock.now)
            session.commit()
    with Session(app.engine) as session:
        kinds = session.exec(select(OutboxMessage.kind)).all()
    assert kinds.count("reminder") == 1


async def test_followup_once_for_a_new_connection_nobody_talked_to(app, clock, surface):
    await app.handle(arrival(mastodon_person("Amara Okafor", acct="amara@school.social",
                                             note="Year 5 teacher, robotics and #edtech")))
    await app.handle(arrival(mastodon_person("Ravi Patel", acct="ravi@school.social")))
    delivered(surface)
    await say(app, "log @ravi@school.social talked about timetables")
    clock.advance(days=6, hours=23)
    await app.sweep()
    assert delivered(surface) == []
    clock.advance(hours=1)
    await app.sweep()
    [message] = delivered(surface)
    assert message.kind == "reminder"
    assert "Amara Okafor" in message.text and "Ravi" not in message.text
    assert "draft" in message.text or "Try asking" in message.text
    for _ in range(3):
        clock.advance(days=3)
        await app.sweep()
    assert delivered(surface) == []


async def test_no_followups_for_the_quiet_baseline(app, clock, surface):
    from bot.adapters.translate import mastodon_profile
    from bot.events import SnapshotReceived
    from tests.support.factories import mastodon_account

    profiles = [mastodon_profile(mastodon_account(f"Person {n}")) for n in range(5)]
    await app.handle(SnapshotReceived(owner_ref="local", platform="mastodon",
                                      profiles=profiles))
    delivered(surface)
    clock.advance(days=8)
    await app.sweep()
    assert delivered(surface) == []
