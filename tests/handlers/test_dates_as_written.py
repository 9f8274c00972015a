"""Dates as the owner writes them (issue 18, item 3): day or month first as in their
part of the world (or as ``settings dates`` says), "the 3rd" is the next 3rd, and
every reminder reply names the weekday, date and time in the owner's zone."""

from datetime import UTC, datetime

import pytest

from handlers.when import default_date_order
from tests.support.chat import say_one

SUNDAY_29_NOV = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture
def sunday(clock):
    clock.now = SUNDAY_29_NOV
    return clock


@pytest.mark.parametrize(("zone", "order"), [
    ("Europe/London", "day-first"), ("America/New_York", "month-first"),
    ("America/Los_Angeles", "month-first"), ("America/Indiana/Knox", "month-first"),
    ("America/Sao_Paulo", "day-first"), ("America/Mexico_City", "day-first"),
    ("Asia/Manila", "month-first"), ("Asia/Kolkata", "day-first"), ("UTC", "day-first"),
])
def test_the_default_order_follows_the_time_zone(zone, order):
    assert default_date_order(zone) == order


async def test_on_the_3rd_is_the_next_3rd(app, sunday):
    await say_one(app, "settings tz Europe/London")
    reply = await say_one(app, "remind me on the 3rd check the slides")
    assert reply.kind == "reply", reply.text
    assert "Thu 3 Dec 2026 09:00 (Europe/London)" in reply.text
    assert reply.text.endswith("check the slides.")
    assert reply.fields["due_at"] == "2026-12-03T09:00:00+00:00"


@pytest.mark.parametrize(("zone", "setting", "shown"), [
    ("Europe/London", None, "Fri 4 Dec 2026 09:00"),
    ("America/New_York", None, "Mon 12 Apr 2027 09:00"),
    ("America/New_York", "day-first", "Fri 4 Dec 2026 09:00"),
    ("Europe/London", "month-first", "Mon 12 Apr 2027 09:00"),
])
async def test_4_12_is_read_as_the_owner_writes_it(app, sunday, zone, setting, shown):
    line = f"settings tz {zone}" + (f" dates {setting}" if setting else "")
    assert (await say_one(app, line)).kind == "reply"
    reply = await say_one(app, "remind me 4/12 14:00 book the hall")
    assert reply.kind == "reply", reply.text
    assert shown.replace("09:00", "14:00") in reply.text and zone in reply.text


async def test_the_dates_setting_is_shown_validated_and_can_follow_the_zone_again(app):
    shown = await say_one(app, "settings")
    assert "Dates (dates): day-first (4/12 is 4 December, from your time zone)" in shown.text
    changed = await say_one(app, "settings dates month-first")
    assert "Dates (dates): month-first (4/12 is April 12)" in changed.text
    assert changed.fields["settings"]["dates"] == "month-first"
    bad = await say_one(app, "settings dates sideways")
    assert bad.kind == "error" and "not day-first or month-first" in bad.text
    back = await say_one(app, "settings dates auto")
    assert back.fields["settings"]["dates"] == "day-first"


async def test_snooze_reads_dates_the_same_way_and_says_the_weekday(app, sunday):
    await say_one(app, "settings tz America/Chicago")
    first = await say_one(app, "remind me tomorrow call the printer")
    reply = await say_one(app, f"snooze {first.fields['reminder_id']} 12/4 8am")
    assert reply.kind == "reply", reply.text
    assert "Fri 4 Dec 2026 08:00" in reply.text


@pytest.mark.parametrize("text", ["the 32nd", "31/2", "4/13"])
async def test_dates_that_do_not_exist_are_an_error_naming_the_forms(app, sunday, text):
    reply = await say_one(app, f"remind me {text} x")
    assert reply.kind == "error" and "on the 3rd" in reply.text
