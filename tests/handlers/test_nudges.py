"""Cadences, goals, streaks and the mid-week nudges, with an injected clock."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from bot.app import App, open_database
from handlers.nudges import streak_of, tag_members, weekly_counts
from storage import repo
from storage.models import Contact, Owner
from tests.support.chat import say, say_one
from tests.support.factories import arrival, mastodon_person
from tests.support.fakes import FakeClock, FakeSurface
from tests.support.owner import set_owner


@pytest.fixture
async def people(app, surface):
    for name, acct, note in (
        ("Amara Okafor", "amara@school.social", "Year 5 teacher"),
        ("Ravi Patel", "ravi@school.social", "Head of Maths at Hillside School"),
        ("Sam Lee", "sam@dev.social", "Software engineer, Python developer"),
    ):
        await app.handle(arrival(mastodon_person(name, acct=acct, note=note)))
    surface.pop()
    return app


def nudges(surface) -> list:
    return [m for m in surface.pop() if m.kind == "nudge"]


async def test_cadence_nudges_once_and_a_logged_conversation_resets_it(people, clock, surface):
    await say_one(people, "log amara talked about reading corners")
    reply = await say_one(people, "cadence amara every 2 weeks")
    assert "Mon 16 Nov 2026" in reply.text
    clock.advance(days=13)
    await people.sweep()
    assert nudges(surface) == []
    clock.advance(days=1)
    await people.sweep()
    [nudge] = nudges(surface)
    assert "Amara Okafor" in nudge.text and nudge.fields["reason"] == "cadence"
    clock.advance(days=2)
    await people.sweep()
    assert nudges(surface) == []  # not re-nudged every sweep
    assert "Amara" in (await say_one(people, "due")).text
    await say_one(people, "log amara caught up about the book fair")
    assert "Nobody is due" in (await say_one(people, "due")).text
    clock.advance(days=13)
    await people.sweep()
    assert nudges(surface) == []
    clock.advance(days=1)
    await people.sweep()
    assert len(nudges(surface)) == 1


async def test_a_tag_cadence_batches_everyone_due_into_one_nudge(people, clock, surface):
    await say_one(people, "log amara #mathchat puzzles")
    await say_one(people, "log ravi #mathchat fractions")
    reply = await say_one(people, "cadence #mathchat every 3 weeks")
    assert "2 people tagged #mathchat" in reply.text
    clock.advance(weeks=3)
    await people.sweep()
    [nudge] = nudges(surface)
    assert "Amara Okafor" in nudge.text and "Ravi Patel" in nudge.text
    assert len(nudge.fields["contacts"]) == 2


async def test_tag_members_are_exactly_the_people_tagged(settings, database_url):
    """Found through the search index, checked against the tags themselves: a word in a
    bio, a longer tag or a tag's parts elsewhere do not count; a tag logged earlier in
    the same transaction does."""
    surface = FakeSurface()
    app = App(settings=settings, engine=open_database(settings, database_url),
              surface=surface, clock=FakeClock())
    for name, note in (("Amara Okafor", "Mentor to new teachers"), ("Ravi Patel", ""),
                       ("Sam Lee", ""), ("Jane Doe", "")):
        await app.handle(arrival(mastodon_person(name, note=note)))
    surface.pop()
    for line in ("log amara #year-6 #mentorship", "log ravi #mentor #year-5",
                 "log sam #year #set-5", "log jane nothing tagged"):
        await say_one(app, line)
    with Session(app.engine) as session:
        ids = {c.name.split()[0]: c.id for c in session.exec(select(Contact))}
        assert tag_members(session, owner_id=app.owner_id, tag="mentor") == [ids["Ravi"]]
        assert tag_members(session, owner_id=app.owner_id, tag="year-5") == [ids["Ravi"]]
        assert tag_members(session, owner_id=app.owner_id, tag="set-5") == [ids["Sam"]]
        owner = session.get(Owner, app.owner_id)
        repo.add_interaction(session, owner=owner, contact=session.get(Contact, ids["Jane"]),
                             kind="note", text="#mentor", tags=["mentor"], at=app.clock())
        assert sorted(tag_members(session, owner_id=app.owner_id, tag="mentor")) == sorted(
            [ids["Ravi"], ids["Jane"]])


async def test_due_lists_most_overdue_first_and_personal_rules_win(people, clock, surface):
    await say_one(people, "log amara hello #club")
    clock.advance(days=5)
    await say_one(people, "log ravi hello #club")
    await say_one(people, "cadence #club every week")
    await say_one(people, "cadence ravi every 30 days")
    clock.advance(days=10)
    reply = await say_one(people, "due")
    assert reply.text.startswith("1 due")
    assert "Amara" in reply.text and "Ravi" not in reply.text
    clock.advance(days=30)
    order = [c["name"] for c in (await say_one(people, "due")).fields["due"]]
    assert order == ["Amara Okafor", "Ravi Patel"]


@contextmanager
def counted(engine) -> Iterator[list]:
    """The SQL statements run inside the block (one item each)."""
    statements: list = []

    def count(*_args) -> None:
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_due_names_everyone_with_their_handle_in_as_many_queries_for_three_as_one(
        people, clock):
    """The contacts and their handles are read together, not one query per person."""
    await say_one(people, "cadence amara every week")
    clock.advance(days=8)
    with counted(people.engine) as one:
        await say_one(people, "due")
    for name in ("ravi", "sam"):
        await say_one(people, f"cadence {name} every week")
    clock.advance(days=8)
    with counted(people.engine) as three:
        reply = await say_one(people, "due")
    assert reply.text.startswith("3 due")
    for handle in ("@amara@school.social", "@ravi@school.social", "@sam@dev.social"):
        assert handle in reply.text
    assert len(three) == len(one)


@pytest.mark.parametrize(("line", "says"), [
    ("cadence", "no keep-in-touch cadences"),
    ("cadence amara", "Say how often"),
    ("cadence amara every blue moon", "can't read"),
    ("cadence amara every 0 days", "between one day"),
    ("cadence nobody every week", "don't know anyone"),
    ("cadence #club off", "no cadence for #club"),
    ("cadence #club", "Say how often"),
])
async def test_cadence_errors_and_listing(people, line, says):
    reply = await say_one(people, line)
    assert says in reply.text


async def test_cadence_off_and_listing(people):
    await say_one(people, "cadence amara every month")
    await say_one(people, "cadence #club every 2 weeks")
    listing = await say_one(people, "cadence")
    assert "every month" in listing.text and "#club: every 2 weeks" in listing.text
    assert "Stopped" in (await say_one(people, "cadence amara off")).text


def test_streak_arithmetic():
    assert streak_of([0, 3, 3, 3, 1], 3) == 3  # current week not met yet: no penalty
    assert streak_of([3, 3, 0, 3, 3], 3) == 2  # last week + the current one, met
    assert streak_of([3, 3, 2, 0], 3) == 0
    assert streak_of([5], 3) == 1


async def test_goal_weeks_follow_the_owners_zone(people, clock, surface):
    set_owner(people, tz="Pacific/Auckland")  # UTC+13 in November
    clock.now = datetime(2026, 11, 8, 10, 30, tzinfo=UTC)  # Sun 23:30 in Auckland
    await say_one(people, "log amara late sunday chat")
    clock.now = datetime(2026, 11, 8, 11, 30, tzinfo=UTC)  # Mon 00:30 in Auckland
    await say_one(people, "log ravi early monday chat")
    with Session(people.engine) as session:
        owner = session.get(Owner, people.owner_id)
        counts = weekly_counts(session, owner=owner, kind="conversations", now=clock.now,
                               weeks=2)
    assert counts == [1, 1]


async def test_goal_progress_and_streak_over_week_boundaries(people, clock):
    set_owner(people, tz="Europe/London")
    reply = await say_one(people, "goal conversations 2 per week")
    assert "0 of 2 this week" in reply.text
    for _week in range(3):  # three weeks, two conversations each
        await say_one(people, "log amara one")
        await say_one(people, "log sam two")
        clock.advance(weeks=1)
    progress = (await say_one(people, "goal")).fields["goals"]
    assert progress == [{"kind": "conversations", "per_week": 2, "done": 0, "streak": 3}]
    await say_one(people, "log ravi again")
    await say_one(people, "log ravi and again")
    assert (await say_one(people, "goal")).fields["goals"][0]["streak"] == 4


async def test_outside_goal_counts_people_outside_the_owners_field(people, clock):
    await say_one(people, "goal outside 1 per week")
    await say_one(people, "log amara teacher chat")
    assert (await say_one(people, "goal")).fields["goals"][0]["done"] == 0
    await say_one(people, "log sam talked about python in class")
    assert (await say_one(people, "goal")).fields["goals"][0]["done"] == 1


@pytest.mark.parametrize(("line", "says"), [
    ("goal naps 3 per week", "I know three goals"),
    ("goal conversations lots", "how many per week"),
    ("goal conversations 0 per week", "between 1 and"),
    ("goal conversations off", "no conversations goal"),
])
async def test_goal_errors(people, line, says):
    reply = await say_one(people, line)
    assert reply.kind == "error" and says in reply.text


async def test_midweek_nudge_when_behind_once_a_week(people, clock, surface):
    set_owner(people, tz="Europe/London")
    await say_one(people, "goal conversations 3 per week")
    clock.now = datetime(2026, 11, 4, 11, 59, tzinfo=UTC)  # Wed 11:59
    await people.sweep()
    assert nudges(surface) == []
    clock.now = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
    await people.sweep()
    [nudge] = nudges(surface)
    assert "0 of 3" in nudge.text and "goal" in nudge.fields["reason"]
    clock.advance(hours=5)
    await people.sweep()
    assert nudges(surface) == []
    clock.now = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)  # next Monday
    await say_one(people, "log amara a")
    await say_one(people, "log ravi b")
    clock.now = datetime(2026, 11, 11, 13, 0, tzinfo=UTC)  # Wed: 2 of 3 is not behind
    await people.sweep()
    assert nudges(surface) == []


async def test_midweek_nudge_waits_for_quiet_hours_to_end(people, clock, surface):
    set_owner(people, quiet_start="11:00", quiet_end="14:00")
    await say_one(people, "goal conversations 1 per week")
    clock.now = datetime(2026, 11, 4, 12, 30, tzinfo=UTC)
    await people.sweep()
    assert nudges(surface) == []
    clock.now = datetime(2026, 11, 4, 14, 0, tzinfo=UTC)
    await people.sweep()
    assert len(nudges(surface)) == 1


async def test_diversity_nudge_names_someone_outside_the_one_field(app, clock, surface):
    outsider = mastodon_person("Nia Brown", acct="nia@lab.social",
                               note="Research scientist studying sleep")
    await app.handle(arrival(outsider))
    clock.advance(days=40)
    for n in range(4):
        await app.handle(arrival(mastodon_person(f"Teacher {n}", acct=f"t{n}@school.social",
                                                 note="Primary school teacher")))
    surface.pop()
    clock.now = datetime(2026, 12, 16, 12, 0, tzinfo=UTC)  # a Wednesday
    await app.sweep()
    [nudge] = nudges(surface)
    assert "all in education" in nudge.text and "Nia Brown" in nudge.text
    assert nudge.fields["reason"] == ["diversity"]
    assert (await say(app, "due"))[0].kind == "reply"
