"""Reading <when> in the owner's zone, quiet hours and weeks across DST changes."""

from datetime import UTC, datetime

import pytest

from handlers.when import (
    WhenError,
    in_quiet_hours,
    next_occurrence,
    parse_when,
    shift_weeks,
    show_time,
    split_when,
    week_start,
)

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday 09:00 in London (GMT)
LONDON = "Europe/London"


def shown(text: str, tz: str = LONDON, now: datetime = MONDAY) -> str:
    when = parse_when(text, tz=tz, now=now)
    return show_time(when.due_at, tz) + (f" {when.recurrence}" if when.recurrence else "")


@pytest.mark.parametrize(("text", "expected"), [
    ("in 3 days", "Thu 5 Nov 2026 09:00"),
    ("in 2 weeks", "Mon 16 Nov 2026 09:00"),
    ("in 2 hours", "Mon 2 Nov 2026 11:00"),
    ("tomorrow", "Tue 3 Nov 2026 09:00"),
    ("tomorrow 9am", "Tue 3 Nov 2026 09:00"),
    ("Tomorrow at 5:30pm", "Tue 3 Nov 2026 17:30"),
    ("next monday", "Mon 9 Nov 2026 09:00"),
    ("monday 14:00", "Mon 2 Nov 2026 14:00"),
    ("monday 8:00", "Mon 9 Nov 2026 08:00"),
    ("friday", "Fri 6 Nov 2026 09:00"),
    ("2026-12-01", "Tue 1 Dec 2026 09:00"),
    ("2026-12-01 14:00", "Tue 1 Dec 2026 14:00"),
    ("every friday", "Fri 6 Nov 2026 09:00 weeks:1"),
    ("every 2 weeks", "Mon 16 Nov 2026 09:00 weeks:2"),
    ("every month", "Wed 2 Dec 2026 09:00 months:1:2"),
    ("5pm", "Mon 2 Nov 2026 17:00"),
    ("dec 5", "Sat 5 Dec 2026 09:00"),
    ("5 december 3pm", "Sat 5 Dec 2026 15:00"),
])
def test_accepted_forms_in_the_owners_zone(text, expected):
    assert shown(text) == expected


def test_the_zone_decides_the_instant():
    tokyo = parse_when("tomorrow 9am", tz="Asia/Tokyo", now=MONDAY)
    assert tokyo.due_at == datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
    new_york = parse_when("2026-12-01 14:00", tz="America/New_York", now=MONDAY)
    assert new_york.due_at == datetime(2026, 12, 1, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "says"), [
    ("2020-01-01", "in the past"),
    ("today 8am", "in the past"),
    ("soonish", "I can't read"),
    ("monday 25:00", "I can't read"),
    ("", "I can't read"),
])
def test_past_and_unreadable_times_are_refused_naming_the_forms(text, says):
    with pytest.raises(WhenError) as error:
        parse_when(text, tz=LONDON, now=MONDAY)
    assert says in str(error.value)
    if "read" in says:
        assert "in 3 days" in str(error.value) and "every friday" in str(error.value)


@pytest.mark.parametrize(("text", "due", "rest"), [
    ("tomorrow call Jane", "Tue 3 Nov 2026 09:00", "call Jane"),
    ("in 3 days to email Jane about robots", "Thu 5 Nov 2026 09:00", "email Jane about robots"),
    ("every friday 4pm write notes", "Fri 6 Nov 2026 16:00", "write notes"),
    ("monday 14:00 standup", "Mon 2 Nov 2026 14:00", "standup"),
    ("tomorrow 3 books back", "Tue 3 Nov 2026 09:00", "3 books back"),
    ("dec 5 buy a gift", "Sat 5 Dec 2026 09:00", "buy a gift"),
    ("2026-12-01 14:00", "Tue 1 Dec 2026 14:00", ""),
])
def test_split_finds_where_the_time_ends(text, due, rest):
    when, remainder = split_when(text, tz=LONDON, now=MONDAY)
    assert (show_time(when.due_at, LONDON), remainder) == (due, rest)


def test_split_refuses_text_that_starts_without_a_time():
    with pytest.raises(WhenError, match="I can't read"):
        split_when("call Jane tomorrow", tz=LONDON, now=MONDAY)


def test_weekly_recurrence_keeps_the_wall_clock_across_dst():
    # Friday 23 Oct 2026 09:00 BST (08:00 UTC); UK clocks go back on Sunday 25 Oct.
    due = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)
    following = next_occurrence(due, "weeks:1", tz=LONDON, after=due)
    assert following == datetime(2026, 10, 30, 9, 0, tzinfo=UTC)  # 09:00 GMT
    assert show_time(following, LONDON) == "Fri 30 Oct 2026 09:00"


def test_recurrence_after_downtime_skips_to_the_next_future_occurrence():
    due = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
    after = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert next_occurrence(due, "weeks:1", tz="UTC", after=after) == datetime(
        2026, 11, 27, 9, 0, tzinfo=UTC)
    assert next_occurrence(due, "days:3", tz="UTC", after=after) == datetime(
        2026, 11, 27, 9, 0, tzinfo=UTC)
    assert next_occurrence(due, "months:1", tz="UTC", after=after) == datetime(
        2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("utc", "quiet"), [
    (datetime(2026, 11, 2, 20, 59, tzinfo=UTC), False),
    (datetime(2026, 11, 2, 21, 0, tzinfo=UTC), True),
    (datetime(2026, 11, 2, 23, 0, tzinfo=UTC), True),
    (datetime(2026, 11, 3, 6, 59, tzinfo=UTC), True),
    (datetime(2026, 11, 3, 7, 0, tzinfo=UTC), False),
    (datetime(2026, 7, 1, 20, 30, tzinfo=UTC), True),  # 21:30 BST in summer
    (datetime(2026, 7, 1, 6, 30, tzinfo=UTC), False),  # 07:30 BST
])
def test_quiet_hours_across_midnight_in_the_owners_zone(utc, quiet):
    assert in_quiet_hours(quiet_start="21:00", quiet_end="07:00", tz=LONDON, now=utc) is quiet


def test_quiet_hours_off_when_unset_or_empty():
    assert not in_quiet_hours(quiet_start=None, quiet_end=None, tz=LONDON, now=MONDAY)
    assert not in_quiet_hours(quiet_start="09:00", quiet_end="09:00", tz=LONDON, now=MONDAY)


def test_weeks_start_on_monday_midnight_local_even_across_dst():
    sunday_night = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)  # Sun 22:30 GMT, after the change
    start = week_start(sunday_night, LONDON)
    assert start == datetime(2026, 10, 18, 23, 0, tzinfo=UTC)  # Mon 19 Oct 00:00 BST
    assert shift_weeks(start, 1, LONDON) == datetime(2026, 10, 26, 0, 0, tzinfo=UTC)  # GMT
    assert week_start(datetime(2026, 10, 26, 0, 0, tzinfo=UTC), LONDON) == datetime(
        2026, 10, 26, 0, 0, tzinfo=UTC)


def test_a_monthly_repeat_keeps_its_day_through_short_months():
    due = datetime(2027, 1, 31, 9, 0, tzinfo=UTC)  # begun on 31 December: "months:1:31"
    dates = []
    for _ in range(4):
        due = next_occurrence(due, "months:1:31", tz="UTC", after=due)
        dates.append(due.date().isoformat())
    assert dates == ["2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]


def test_a_monthly_repeat_stored_without_its_day_steps_from_its_due_date():
    due = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
    assert next_occurrence(due, "months:1", tz="UTC", after=due) == datetime(
        2026, 12, 6, 9, 0, tzinfo=UTC)
