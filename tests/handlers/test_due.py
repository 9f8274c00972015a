"""Work proportional to what is due: an owner is swept when its next work comes due,
not every PLNBOT_SWEEP_SECONDS; whatever adds due work makes the owner due at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.app import App
from bot.worker import Worker
from handlers.due import MAX_IDLE
from storage.models import Owner, Reminder
from tests.conftest import make_settings
from tests.support.factories import command
from tests.support.fakes import FakeSurface


@pytest.fixture
def owner_app(engine, clock) -> App:
    return App(settings=make_settings(PLNBOT_OWNER="ada"), engine=engine,
               surface=FakeSurface(), clock=clock)


@pytest.fixture
def worker(engine, clock) -> Worker:
    return Worker(settings=make_settings(PLNBOT_SWEEP_SECONDS=30), engine=engine,
                  surface=FakeSurface(), clock=clock)


def next_sweep(engine):
    with Session(engine) as session:
        return session.exec(select(Owner.next_sweep_at)
                            .where(Owner.external_ref == "ada")).one()


async def say(app: App, line: str) -> None:
    await app.handle(command(line, owner_ref="ada"))
    app.surface.pop()


async def test_an_idle_owner_costs_nothing_until_its_time(owner_app, worker, clock, engine):
    assert await worker.drain() == 1
    assert next_sweep(engine) == clock() + MAX_IDLE
    clock.advance(hours=1)
    assert await worker.run_once() == 0  # once every 30 s before
    clock.advance(seconds=(MAX_IDLE - timedelta(hours=1)).total_seconds())
    assert await worker.run_once() == 1


async def test_a_new_reminder_sets_the_owners_next_sweep(owner_app, worker, clock, engine):
    await worker.drain()
    await say(owner_app, "remind me in 2 hours call Jo back")
    assert next_sweep(engine) is None  # due now: the sweep works out when
    assert await worker.drain() == 1
    with Session(engine) as session:
        due = session.exec(select(Reminder.due_at)).one()
    assert next_sweep(engine) == due == clock() + timedelta(hours=2)

    clock.advance(hours=2, seconds=-1)
    assert await worker.run_once() == 0
    clock.advance(seconds=1)
    assert await worker.drain() == 1
    assert [m.kind for m in worker.surface.messages] == ["reminder"]
    assert next_sweep(engine) == clock() + MAX_IDLE


async def test_the_digest_moment_is_the_next_sweep(owner_app, worker, clock, engine):
    await say(owner_app, "settings digest monday 12:00")  # the clock reads Monday 09:00
    await worker.drain()
    assert next_sweep(engine) == clock() + timedelta(hours=3)
    clock.advance(hours=3)
    assert await worker.drain() == 1
    assert "digest" in [m.kind for m in worker.surface.messages]
    assert next_sweep(engine) == clock() + MAX_IDLE


async def test_a_poll_that_changed_nothing_does_not_wake_the_owner(owner_app, worker, clock,
                                                                     engine):
    from bot.events import SourceChecked

    await worker.drain()
    before = next_sweep(engine)
    await owner_app.handle(SourceChecked(owner_ref="ada", platform="mastodon"))
    assert next_sweep(engine) == before
