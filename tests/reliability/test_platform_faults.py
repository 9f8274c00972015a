"""Platform faults through the fake servers: the bot waits, retries, reports once,
removes nobody, and keeps answering its owner.

The real client libraries (Mastodon.py over requests, atproto over httpx, tweepy over
aiohttp) talk to fakes of the platform APIs that fail the way real servers and proxies
do: 500 and 503 answers, a 200 whose body is an HTML error page, a page cut off half
way, and no answer at all within the request timeout. Each fault hits the follower
list of a scheduled reconciliation — the moment a bot that trusted a bad answer would
drop everyone — and is then cleared.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.adapters.bluesky import adapter as bluesky_adapter
from bot.adapters.mastodon import adapter as mastodon_adapter
from bot.adapters.x.adapter import XSource
from storage.models import Connection
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.fake_bluesky import RunningBluesky, make_profile
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeSleep
from tests.support.servers import HANG, MALFORMED, TRUNCATED
from tests.support.x_api import FakeXApi, recorded_followers

FAULTS = [500, 503, MALFORMED, TRUNCATED, HANG]
FOLLOWERS = 30
POLLS_DURING_FAULT = 3


def states(app) -> list[str]:
    with Session(app.engine) as session:
        return list(session.exec(select(Connection.state)))


def kinds(app) -> list[str]:
    return [message.kind for message in app.surface.pop()]


async def ride_out(app, clock, fail) -> list[str]:
    """Baseline, then a day later a reconciliation that meets the fault on every try for
    a few polls; the owner asks ``who`` meanwhile. Returns the kinds said during the fault."""
    await app.poll_sources()
    assert kinds(app) == ["reply"] and states(app) == ["active"] * FOLLOWERS
    clock.advance(hours=25)  # the daily reconciliation is due
    fail()
    said = []
    for _ in range(POLLS_DURING_FAULT):
        await app.poll_sources()
        said += kinds(app)
        reply = await say_one(app, "who #1")
        assert reply.kind == "reply" and "#1" in reply.text  # still serving its owner
        clock.advance(hours=2)  # past any back-off
    assert states(app) == ["active"] * FOLLOWERS  # nobody removed on a bad answer
    return said


async def recovers(app, clock, said: list[str]) -> None:
    """Once the platform answers again: recovered (if a problem was told), nobody lost."""
    clock.advance(hours=25)
    await app.poll_sources()
    after = kinds(app)
    assert "error" not in after and "connection_lost" not in after
    if "source_error" in said:
        assert "source_recovered" in after
    assert states(app) == ["active"] * FOLLOWERS


def told_once(said: list[str], caplog) -> None:
    """One ``source_error`` for the whole outage — no losses, no vanished people, no
    "something went wrong" — and no traceback in the log (it is not a bug)."""
    assert said == ["source_error"], said
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.fixture
def short_timeouts(monkeypatch):
    """A hung server must cost the test a fraction of a second, not 30."""
    monkeypatch.setattr(mastodon_adapter, "REQUEST_TIMEOUT", 0.5)
    monkeypatch.setattr(bluesky_adapter, "REQUEST_TIMEOUT", 0.5)


@pytest.mark.parametrize("fault", FAULTS)
async def test_mastodon(app, clock, fault, short_timeouts, caplog):
    with RunningMastodon() as fake:
        for n in range(FOLLOWERS):
            fake.follow(make_account(f"teacher{n}", display_name=f"Teacher {n}"))
        config = make_settings(MASTODON_BASE_URL=fake.url, MASTODON_ACCESS_TOKEN=fake.token)
        app.sources = [mastodon_adapter.build_source(config, clock=clock,
                                                     sleep=FakeSleep(clock))]
        said = await ride_out(app, clock, lambda: fake.fail("/followers", fault, times=20))
        told_once(said, caplog)
        fake.failures.clear()
        await recovers(app, clock, said)


@pytest.mark.parametrize("fault", FAULTS)
async def test_bluesky(app, clock, fault, short_timeouts, caplog):
    with RunningBluesky() as fake:
        for n in range(FOLLOWERS):
            fake.follow(make_profile(f"Teacher {n}", description="Year 4 teacher"))
        config = make_settings(BLUESKY_HANDLE=fake.handle, BLUESKY_APP_PASSWORD=fake.password,
                               BLUESKY_BASE_URL=fake.url)
        app.sources = [bluesky_adapter.build_source(config, clock=clock,
                                                    sleep=FakeSleep(clock))]
        said = await ride_out(app, clock,
                              lambda: fake.fail("getFollowers", fault, times=20))
        told_once(said, caplog)
        fake.failures.clear()
        await recovers(app, clock, said)


X_FAULTS = {500: (500, {"title": "Internal Server Error"}),
            503: (503, {"title": "Service Unavailable"}),
            MALFORMED: (200, "<html><body>Over capacity</body></html>"),
            TRUNCATED: (200, '{"data": [{"id": "1", "name": "Cut'),
            HANG: (200, HANG)}


@pytest.mark.parametrize("fault", FAULTS)
async def test_x(app, clock, fault, caplog):
    from aioresponses import aioresponses

    with aioresponses() as mocked:
        api = FakeXApi(mocked, clock, page_size=10, followers=recorded_followers()[:FOLLOWERS])
        settings = make_settings(X_BEARER_TOKEN="AAAA-test-bearer", X_USER_ID=api.me["id"])
        app.sources = [XSource(settings, bearer_token="AAAA-test-bearer", clock=clock,
                               sleep=FakeSleep(clock))]
        status, body = X_FAULTS[fault]

        def fail() -> None:
            api.fail("followers", status, body, times=20, after=1)  # the reconciliation's pages

        said = await ride_out(app, clock, fail)
        told_once(said, caplog)
        api.failures.clear()
        await recovers(app, clock, said)
