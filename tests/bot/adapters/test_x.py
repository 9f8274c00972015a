"""The X source against X's HTTP API as recorded (tweepy AsyncClient over aiohttp)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from aioresponses import aioresponses
from sqlmodel import Session, select

from bot.adapters.x.adapter import XSource, build_source
from bot.config import ConfigError
from storage.models import Account, Connection, Draft, Handle, MassDrop
from tests.conftest import make_settings
from tests.support.cli import run_plnbot
from tests.support.x_api import (
    TIER_403,
    UNAUTHORIZED_401,
    UNAVAILABLE_503,
    FakeXApi,
    recorded_followers,
)

BEARER = "AAAAAAAAAAAAAAAAAAAAAtest-bearer-0123456789"
USER_TOKEN = "user-token-abcdefghijklmnop"
OWNER_ID = "1072250532645998596"


class FakeSleep:
    """Sleeping moves the fake clock instead of the test's time."""

    def __init__(self, clock):
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)


@pytest.fixture
def mocked():
    with aioresponses() as mocked:
        yield mocked


@pytest.fixture
def sleep(clock):
    return FakeSleep(clock)


@pytest.fixture
def x_settings():
    return make_settings(X_BEARER_TOKEN=BEARER, X_USER_ID=OWNER_ID)


@pytest.fixture
def source(x_settings, clock, sleep):
    return XSource(x_settings, bearer_token=BEARER, clock=clock, sleep=sleep)


def some_followers() -> list[dict]:
    """60 recorded followers: enough for three pages of 20, quick to sync."""
    return recorded_followers()[:60]


def new_user(n: int) -> dict:
    return {"id": str(1600000000000000000 + n), "name": f"Teacher {n}",
            "username": f"teacher{n}", "description": "Year 6 teacher. #mathchat"}


def account(app) -> Account:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == "x")).one()


def connection_states(app) -> dict[str, str]:
    with Session(app.engine) as session:
        rows = session.exec(select(Handle.external_id, Connection.state)
                            .join(Connection, Connection.handle_id == Handle.id))
        return {external_id: state for external_id, state in rows}


async def baseline(app, source, api) -> None:
    await source.poll(app)
    app.surface.pop()
    api.requests.clear()


async def test_first_poll_is_a_complete_quiet_baseline(app, surface, source, mocked, clock):
    api = FakeXApi(mocked, clock, page_size=50, followers=recorded_followers())
    await source.poll(app)
    pages = api.calls("followers")
    assert len(api.followers) == 184  # both recorded cassettes: 4 pages of 50
    assert [p.get("pagination_token") for p in pages] == [None, "page50", "page100", "page150"]
    assert pages[0]["max_results"] == "1000"
    assert pages[0]["user.fields"].split(",") == [
        "description", "location", "url", "entities", "public_metrics", "created_at",
        "profile_image_url", "verified"]
    [reply] = surface.pop()
    assert f"{len(api.followers)} existing connections" in reply.text
    stored = account(app)
    assert stored.baseline_done and stored.followers_count_seen == len(api.followers)
    assert stored.last_reconciled_at == clock() and stored.handle == "TweepyDev"
    assert api.authorizations() == {f"Bearer {BEARER}"}


async def test_a_poll_stops_at_the_first_known_follower(app, surface, source, mocked, clock):
    api = FakeXApi(mocked, clock, followers=some_followers())
    await baseline(app, source, api)
    api.followers[:0] = [new_user(3), new_user(2), new_user(1)]  # newest first
    clock.advance(minutes=5)
    await source.poll(app)
    assert len(api.calls("followers")) == 1
    messages = surface.pop()
    assert [m.kind for m in messages] == ["new_connection"] * 3
    assert [m.fields["contact"]["handle"] for m in messages] == [
        "teacher1", "teacher2", "teacher3"]  # in the order they arrived
    assert all(m.fields["send_url"].startswith("https://x.com/messages/compose?recipient_id=")
               for m in messages)
    assert account(app).followers_count_seen == len(api.followers)


async def test_a_quiet_poll_costs_one_request_and_says_nothing(app, surface, source, mocked,
                                                              clock):
    api = FakeXApi(mocked, clock, followers=some_followers())
    await baseline(app, source, api)
    await source.poll(app)
    assert len(api.calls("followers")) == 1 and surface.pop() == []


async def test_many_arrivals_page_on_with_next_token(app, surface, source, mocked, clock):
    api = FakeXApi(mocked, clock, page_size=20, followers=some_followers())
    await baseline(app, source, api)
    api.followers[:0] = [new_user(n) for n in range(30, 0, -1)]
    await source.poll(app)
    assert [q.get("pagination_token") for q in api.calls("followers")] == [None, "page20"]
    assert len(surface.pop()) == 30


async def test_a_flood_of_arrivals_caps_the_welcome_drafts(app, surface, source, mocked,
                                                          clock):
    api = FakeXApi(mocked, clock, followers=some_followers())
    await baseline(app, source, api)
    api.followers[:0] = [new_user(n) for n in range(70, 0, -1)]
    await source.poll(app)
    assert len(api.calls("followers")) == 1
    with Session(app.engine) as session:
        drafts = len(session.exec(select(Draft)).all())
    assert 0 < drafts < 70
    assert all(connection_states(app)[new_user(n)["id"]] == "active" for n in range(1, 71))
    assert "without welcome drafts" in surface.pop()[-1].text


async def test_rate_limits_are_waited_out_without_exceeding_a_window(app, surface, mocked,
                                                                    clock, sleep, source):
    api = FakeXApi(mocked, clock, page_size=8, followers_limit=3, followers=some_followers())
    await source.poll(app)  # 8 pages with 3 requests per window
    assert api.over_limit == 0 and len(api.calls("followers")) == 8
    assert len(sleep.slept) == 2 and all(800 < s <= 901 for s in sleep.slept)
    assert account(app).baseline_done


async def test_a_429_is_waited_out_then_retried(app, surface, source, mocked, clock, sleep):
    api = FakeXApi(mocked, clock, followers=some_followers())
    reset = int(clock().timestamp()) + 600
    api.fail("followers", 429, {"title": "Too Many Requests"},
             headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
    await source.poll(app)
    assert sum(sleep.slept) >= 600 and len(api.calls("followers")) == 2
    assert account(app).baseline_done and account(app).last_error is None


async def test_no_api_access_is_told_once_with_the_archive_way(app, surface, source, mocked,
                                                              clock):
    api = FakeXApi(mocked, clock, followers=some_followers())
    api.fail("followers", 403, TIER_403, times=10)
    await source.poll(app)
    [message] = surface.pop()
    assert message.kind == "source_error" and message.fields["problem"] == "tier"
    assert "Pro or Enterprise" in message.text and "plnbot import x-archive" in message.text
    assert account(app).last_error.startswith("tier:")
    for _ in range(3):  # polls every 5 minutes: no requests, no messages
        clock.advance(minutes=5)
        await source.poll(app)
    assert len(api.calls("followers")) == 1 and surface.pop() == []
    clock.advance(hours=1)  # an hourly retry, still refused: still no second message
    await source.poll(app)
    assert len(api.calls("followers")) == 2 and surface.pop() == []
    restarted = XSource(source.settings, bearer_token=BEARER, clock=clock,
                        sleep=source.limiter.sleep)
    await restarted.poll(app)  # a restart (new token, new tier?) tries at once
    assert len(api.calls("followers")) == 3 and surface.pop() == []


async def test_a_rejected_token_names_the_variable_and_never_the_token(
        app, surface, source, mocked, clock, caplog):
    api = FakeXApi(mocked, clock, followers=some_followers())
    api.fail("user", 401, UNAUTHORIZED_401)
    with caplog.at_level(logging.DEBUG):
        await source.poll(app)
    [message] = surface.pop()
    assert message.fields["problem"] == "auth" and "X_BEARER_TOKEN" in message.text
    assert "401" in message.text and BEARER not in message.text
    from bot.logs import RedactSecrets
    redact = RedactSecrets([BEARER])
    for record in caplog.records:
        redact.filter(record)
        assert BEARER not in record.getMessage()


async def test_an_unknown_user_id_is_a_clear_configuration_problem(app, surface, source,
                                                                   mocked, clock):
    api = FakeXApi(mocked, clock, followers=some_followers())
    api.fail("user", 200, {"errors": [{
        "value": OWNER_ID, "detail": f"Could not find user with id: [{OWNER_ID}].",
        "title": "Not Found Error", "resource_type": "user", "parameter": "id",
        "resource_id": OWNER_ID, "type": "https://api.twitter.com/2/problems/resource-not-found",
    }]})
    await source.poll(app)
    [message] = surface.pop()
    assert message.fields["problem"] == "config" and "X_USER_ID" in message.text
    assert "Could not find user" in message.text and api.calls("followers") == []


async def test_x_being_down_is_retried_then_told_once_then_recovery(app, surface, source,
                                                                    mocked, clock, sleep):
    api = FakeXApi(mocked, clock, followers=some_followers())
    api.fail("user", 503, UNAVAILABLE_503, times=8)
    await source.poll(app)
    assert len(api.calls("user")) == 4 and sleep.slept == [2, 4, 8]
    [message] = surface.pop()
    assert message.fields["problem"] == "server" and "503" in message.text
    await source.poll(app)
    assert len(api.calls("user")) == 8 and surface.pop() == []
    await source.poll(app)
    kinds = [m.kind for m in surface.pop()]
    assert kinds == ["reply", "source_recovered"] and account(app).last_error is None


async def test_a_passing_hiccup_is_not_reported(app, surface, source, mocked, clock):
    api = FakeXApi(mocked, clock, followers=some_followers())
    api.fail("followers", 503, UNAVAILABLE_503)
    await source.poll(app)
    assert [m.kind for m in surface.pop()] == ["reply"]


async def test_a_lower_follower_count_triggers_a_reconciliation(app, surface, source, mocked,
                                                               clock):
    api = FakeXApi(mocked, clock, page_size=20, followers=some_followers())
    await baseline(app, source, api)
    gone = [api.followers.pop(10), api.followers.pop(40)]
    api.followers.insert(0, new_user(1))
    await source.poll(app)
    assert len(api.calls("followers")) == 1 + 3  # the usual poll, then every page
    states = connection_states(app)
    assert all(states[u["id"]] != "active" for u in gone)
    assert states[new_user(1)["id"]] == "active"
    kinds = [m.kind for m in surface.pop()]
    assert "new_connection" in kinds
    assert account(app).followers_count_seen == len(api.followers)
    api.requests.clear()
    await source.poll(app)  # counts agree again: back to one request
    assert len(api.calls("followers")) == 1


async def test_an_interrupted_reconciliation_adds_but_never_removes(app, surface, source,
                                                                    mocked, clock):
    api = FakeXApi(mocked, clock, page_size=20, followers=some_followers())
    await baseline(app, source, api)
    seen = account(app).followers_count_seen
    gone = api.followers.pop(len(api.followers) - 1)
    api.followers[:0] = [new_user(1), new_user(2)]
    api.fail("followers", 503, UNAVAILABLE_503, times=4, after=2)  # page 2 of the reconciliation
    await source.poll(app)
    states = connection_states(app)
    assert states[gone["id"]] == "active"  # nothing removed on a partial list
    assert states[new_user(1)["id"]] == states[new_user(2)["id"]] == "active"
    assert account(app).followers_count_seen == seen  # so the next poll reconciles again
    assert "source_error" in [m.kind for m in surface.pop()]
    with Session(app.engine) as session:
        assert len(session.exec(select(Draft)).all()) == 2


async def test_the_slow_schedule_reconciles_even_when_counts_agree(app, surface, source,
                                                                  mocked, clock, x_settings):
    api = FakeXApi(mocked, clock, page_size=20, followers=some_followers())
    await baseline(app, source, api)
    clock.advance(hours=x_settings.reconcile_hours - 1)
    await source.poll(app)
    assert len(api.calls("followers")) == 1
    api.requests.clear()
    clock.advance(hours=1)
    await source.poll(app)
    assert len(api.calls("followers")) == 3
    assert surface.pop() == []  # nothing changed, so nothing to say
    assert account(app).last_reconciled_at == clock()


async def test_a_mass_drop_is_rechecked_on_its_own_schedule_not_the_daily_one(
        app, surface, source, mocked, clock):
    api = FakeXApi(mocked, clock, page_size=20, followers=some_followers())
    await baseline(app, source, api)
    del api.followers[20:]  # X's glitch: 40 of 60 followers missing, the count agreeing
    await source.poll(app)
    assert [m.kind for m in surface.pop()] == ["connections_vanished"]
    clock.advance(minutes=10)
    await source.poll(app)  # the first re-check is 15 minutes after the drop
    assert rechecks(app) == 0
    clock.advance(minutes=6)
    await source.poll(app)  # due: a full list now, not at the next daily reconciliation
    assert rechecks(app) == 1
    assert account(app).last_reconciled_at == clock()
    assert list(connection_states(app).values()).count("vanished") == 40  # still held


def rechecks(app) -> int:
    with Session(app.engine) as session:
        return session.exec(select(MassDrop)).one().checks


async def test_a_user_token_finds_the_account_with_get_me(app, surface, mocked, clock, sleep):
    settings = make_settings(X_USER_ACCESS_TOKEN=USER_TOKEN)
    source = build_source(settings)
    source.limiter.sleep = sleep
    api = FakeXApi(mocked, clock, followers=some_followers())
    await source.poll(app)
    assert len(api.calls("me")) == 1 and account(app).external_id == OWNER_ID
    assert api.authorizations() == {f"Bearer {USER_TOKEN}"}


def test_configuration():
    assert build_source(make_settings()) is None
    with pytest.raises(ConfigError, match="X_USER_ID"):
        build_source(make_settings(X_BEARER_TOKEN=BEARER))
    assert build_source(make_settings(X_BEARER_TOKEN=BEARER, X_USER_ID="1")).platform == "x"


def test_never_registers_a_welcome_sender():
    import bot.adapters.x.adapter as x

    assert not hasattr(x, "XWelcomeSender") and not hasattr(XSource, "send_welcome")


async def test_run_once_with_x_configured(mocked, clock, tmp_path, monkeypatch):
    """`plnbot run --once` in-process: one poll of X through the whole stack."""
    from click.testing import CliRunner

    from bot.cli import main

    api = FakeXApi(mocked, clock, followers=[new_user(n) for n in range(5)])
    monkeypatch.chdir(tmp_path)  # no developer .env
    env = {"X_BEARER_TOKEN": BEARER, "X_USER_ID": OWNER_ID, "PLNBOT_OWNER": "local",
           "PLNBOT_LOG_LEVEL": "DEBUG"}  # tweepy logs its request headers at DEBUG
    db = f"sqlite:///{tmp_path / 'run.sqlite3'}"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = await _run_in_thread(CliRunner().invoke, main,
                                      ["run", "--once", "--json", "--db", db], env=env)
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    assert '"First sync of your X account: 5 existing connections' in result.output
    assert len(api.calls("followers")) == 1
    assert BEARER not in result.output + result.stderr
    assert "Bearer ***" in result.stderr  # the header was logged, and redacted


def test_run_refuses_a_bearer_token_without_a_user_id(tmp_path):
    result = run_plnbot("run", "--once", "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}",
                        env={"X_BEARER_TOKEN": BEARER})
    assert result.returncode == 2 and "X_USER_ID" in result.stderr
    assert BEARER not in result.stderr and "Traceback" not in result.stderr


async def _run_in_thread(func, *args, **kwargs):
    """The CLI runs its own event loop, so it cannot run on the test's."""
    import asyncio

    return await asyncio.to_thread(func, *args, **kwargs)


def test_reconcile_interval_default_is_daily(x_settings):
    assert timedelta(hours=x_settings.reconcile_hours) == timedelta(days=1)
