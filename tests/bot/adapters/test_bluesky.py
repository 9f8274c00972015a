"""The Bluesky source and sender: the real atproto client over HTTP against a fake PDS."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from bot.adapters.bluesky import adapter as bluesky_adapter
from bot.adapters.bluesky.adapter import build_source, chat_allowed, grapheme_count
from bot.app import App
from bot.config import ConfigError
from bot.context import SendRefused
from storage.models import Account, Connection, Handle
from tests.conftest import make_settings
from tests.support.fake_bluesky import RunningBluesky, make_profile, recorded_profile
from tests.support.fakes import FakeSleep


@pytest.fixture
def fake():
    with RunningBluesky() as server:
        yield server


@pytest.fixture
def sleep(clock) -> FakeSleep:
    return FakeSleep(clock)


def source_for(fake, clock, sleep, password: str | None = None):
    config = make_settings(BLUESKY_HANDLE=fake.handle, BLUESKY_APP_PASSWORD=password or
                           fake.password, BLUESKY_BASE_URL=fake.url)
    return build_source(config, clock=clock, sleep=sleep)


@pytest.fixture
def source(fake, clock, sleep):
    return source_for(fake, clock, sleep)


def account_row(app: App) -> Account:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == "bluesky")).one()


async def baseline(app, fake, source, count: int = 4):
    for index in range(count):
        fake.follow(recorded_profile(index))
    await source.poll(app)
    return app.surface.pop()


async def test_first_poll_is_a_quiet_baseline_from_the_recorded_profiles(app, fake, source):
    [summary] = await baseline(app, fake, source)
    assert summary.kind == "reply" and "4 existing connections" in summary.text
    assert account_row(app).cursor == fake.notifications[0]["indexedAt"]
    with Session(app.engine) as session:
        handles = {h.handle for h in session.exec(select(Handle))}
    assert "why.bsky.team" in handles


async def test_a_flood_of_follows_caps_the_welcome_drafts(app, fake, source):
    await baseline(app, fake, source)
    for n in range(70):
        fake.follow(make_profile(f"New Person{n}", description="Teacher"))
    await source.poll(app)
    kinds = [m.kind for m in app.surface.pop()]
    assert 0 < kinds.count("new_connection") < 70
    with Session(app.engine) as session:
        active = session.exec(select(Connection).where(Connection.state == "active")).all()
    assert len(active) == 4 + 70
    assert account_row(app).cursor == fake.notifications[0]["indexedAt"]
    await source.poll(app)
    assert app.surface.pop() == []


async def test_new_followers_come_from_follow_notifications_after_the_seen_time(
        app, fake, source, monkeypatch):
    await baseline(app, fake, source)
    monkeypatch.setattr(bluesky_adapter, "NOTIFICATION_PAGE", 2)
    newcomers = [make_profile(n, description="Teacher") for n in ("Ada", "Ben", "Cal")]
    for person in newcomers:
        fake.follow(person)
    fake.requests.clear()

    await source.poll(app)
    await source.poll(app)  # nothing new the second time

    arrivals = [m for m in app.surface.pop() if m.kind == "new_connection"]
    assert [m.fields["contact"]["handle"] for m in arrivals] == [p["handle"] for p in newcomers]
    pages = [p for _, p in fake.requests if "listNotifications" in p]
    assert "reasons=follow" in pages[0] and "cursor=2" in pages[1]
    assert account_row(app).cursor == fake.notifications[0]["indexedAt"]


async def test_reconciliation_pages_through_followers_and_finds_who_left(
        app, fake, source, clock, monkeypatch):
    monkeypatch.setattr(bluesky_adapter, "FOLLOWER_PAGE", 2)
    await baseline(app, fake, source, count=5)
    gone = fake.followers.pop(2)
    clock.advance(hours=25)
    await source.poll(app)
    assert lost_handles(app) == [gone["handle"]]
    pages = [p for _, p in fake.requests if "getFollowers" in p]
    assert sum("cursor=" in p for p in pages) == 2 + 1  # 5, then 4 followers, pages of 2


async def test_the_reconciliation_interval_may_be_a_fraction_of_an_hour(
        app, fake, clock, sleep):
    config = make_settings(BLUESKY_HANDLE=fake.handle, BLUESKY_APP_PASSWORD=fake.password,
                           BLUESKY_BASE_URL=fake.url, PLNBOT_RECONCILE_HOURS="0.5")
    source = build_source(config, clock=clock, sleep=sleep)
    await baseline(app, fake, source, count=3)
    gone = fake.followers.pop(1)
    clock.advance(minutes=29)
    await source.poll(app)
    assert lost_handles(app) == []
    clock.advance(minutes=2)
    await source.poll(app)
    assert lost_handles(app) == [gone["handle"]]


def lost_handles(app: App) -> list[str]:
    with Session(app.engine) as session:
        return list(session.exec(
            select(Handle.handle).join(Connection, Connection.handle_id == Handle.id)
            .where(Connection.state == "lost")))


async def test_a_welcome_goes_out_through_the_chat_proxy(app, fake, source):
    person = make_profile("Dee", allow="following")
    fake.follow(person)
    handle = SimpleNamespace(external_id=person["did"], handle=person["handle"],
                             display_handle=person["handle"])
    reply = await source.sender.send_welcome(handle=handle, text="Welcome, Dee! 👋🏽")
    assert reply == f"Sent to @{person['handle']} as a Bluesky chat message."
    [message] = fake.messages
    assert message["message"]["text"] == "Welcome, Dee! 👋🏽"
    assert message["convoId"].startswith("convo-")


async def test_closed_dms_are_refused_saying_why_in_one_sentence(app, fake, source):
    person = make_profile("Eve", allow="none")
    fake.follow(person)
    handle = SimpleNamespace(external_id=person["did"], handle=person["handle"],
                             display_handle=person["handle"])
    with pytest.raises(SendRefused) as refused:
        await source.sender.send_welcome(handle=handle, text="Welcome, Eve!")
    assert "they accept chats from nobody" in str(refused.value)
    # one sentence; the text to send by hand is added once, by the handler
    assert "Welcome, Eve!" not in str(refused.value) and str(refused.value).endswith(").")
    assert fake.messages == []
    assert not [p for _, p in fake.requests if "chat.bsky" in p]


async def test_a_chat_refused_by_the_service_is_passed_on(app, fake, source, monkeypatch):
    person = make_profile("Fay", allow="all")
    fake.follow(person)
    monkeypatch.setattr(bluesky_adapter, "chat_allowed", lambda profile: (True, "all"))
    person["associated"]["chat"]["allowIncoming"] = "none"  # changed since we looked
    handle = SimpleNamespace(external_id=person["did"], handle=person["handle"],
                             display_handle=person["handle"])
    with pytest.raises(SendRefused, match="recipient has disabled incoming messages"):
        await source.sender.send_welcome(handle=handle, text="Hi")


async def test_an_app_password_without_dm_access_names_the_variable(app, fake, source):
    person = make_profile("Gus")
    fake.follow(person)
    fake.fail("getConvoForMembers", 401)
    handle = SimpleNamespace(external_id=person["did"], handle=person["handle"],
                             display_handle=person["handle"])
    with pytest.raises(SendRefused, match="BLUESKY_APP_PASSWORD"):
        await source.sender.send_welcome(handle=handle, text="Hi")


async def test_over_a_thousand_graphemes_is_refused(source):
    handle = SimpleNamespace(external_id="did:plc:x", handle="x", display_handle="x")
    with pytest.raises(SendRefused, match="1000"):
        await source.sender.send_welcome(handle=handle, text="👋🏽" * 1001)
    assert grapheme_count("👋🏽" * 1000) == 1000


def test_chat_settings():
    assert chat_allowed({"associated": {"chat": {"allowIncoming": "all"}}}) == (True, "all")
    assert chat_allowed({"associated": {"chat": {"allowIncoming": "none"}}})[0] is False
    assert chat_allowed({"viewer": {"followedBy": "at://x"}}) == (True, "following")
    assert chat_allowed({}) == (False, "following")


async def test_rate_limit_headers_make_the_poll_wait(app, fake, source, clock, sleep):
    fake.ratelimit_remaining = 2
    fake.ratelimit_reset = clock.now.replace(minute=4)
    await baseline(app, fake, source)
    assert sleep.calls[0] == pytest.approx(240, abs=1)


async def test_a_wrong_app_password_is_reported_once(app, fake, clock, sleep):
    source = source_for(fake, clock, sleep, password="wrong-pass-9999")
    for _ in range(3):
        await source.poll(app)
        clock.advance(hours=2)
    [error] = app.surface.pop()
    assert error.kind == "source_error" and "BLUESKY_APP_PASSWORD" in error.text
    assert "wrong-pass-9999" not in error.text


async def test_a_server_error_backs_off_and_is_reported_once(app, fake, source, clock):
    fake.fail("createSession", 500, times=2)
    await source.poll(app)
    await source.poll(app)  # within the back-off
    clock.advance(minutes=2)
    await source.poll(app)
    [error] = app.surface.pop()
    assert "Cannot reach Bluesky" in error.text and "HTTP 500" in error.text
    clock.advance(minutes=5)
    await source.poll(app)
    assert [m.kind for m in app.surface.pop()] == ["reply", "source_recovered"]


async def test_a_server_without_a_chat_service_says_so_and_gives_the_way_by_hand(
        app, fake, source):
    # what the open-source reference PDS answers (tests/peers): it has no chat service
    person = make_profile("Jo", allow="all")
    fake.follow(person)
    fake.fail("getConvoForMembers", 500)
    handle = SimpleNamespace(external_id=person["did"], handle=person["handle"],
                             display_handle=person["handle"])
    with pytest.raises(SendRefused, match="chats are not available") as refused:
        await source.sender.send_welcome(handle=handle, text="Hi Jo", via=None)
    assert fake.url in str(refused.value) and "by hand" in str(refused.value)
    assert fake.messages == []


def test_half_a_configuration_is_a_clear_error():
    with pytest.raises(ConfigError, match="BLUESKY_APP_PASSWORD"):
        build_source(make_settings(BLUESKY_HANDLE="jane.bsky.social"))
    assert build_source(make_settings()) is None


def test_plnbot_run_once_with_a_wrong_password_says_which_variable(fake, db_url):
    from tests.support.cli import json_messages, run_plnbot

    env = {"BLUESKY_HANDLE": fake.handle, "BLUESKY_APP_PASSWORD": "nope-nope-nope",
           "BLUESKY_BASE_URL": fake.url}
    result = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    assert result.returncode == 0, result.stderr
    [error] = json_messages(result.stdout)
    assert error["kind"] == "source_error" and "BLUESKY_APP_PASSWORD" in error["text"]
    assert "nope-nope-nope" not in result.stdout + result.stderr


async def test_a_429_waits_for_the_window_and_retries(app, fake, source, clock, sleep):
    await baseline(app, fake, source)
    fake.ratelimit_reset = clock.now.replace(minute=2)
    fake.fail("listNotifications", 429)
    fake.follow(make_profile("Hal"))
    await source.poll(app)
    assert sleep.calls == [pytest.approx(120, abs=1)]
    assert [m.kind for m in app.surface.pop()] == ["new_connection"]


async def test_a_refused_session_is_renewed_without_bothering_the_owner(app, fake, source):
    await baseline(app, fake, source)
    fake.revoke_sessions()  # the old session is no longer valid
    fake.follow(make_profile("Ivy"))
    await source.poll(app)
    assert [m.kind for m in app.surface.pop()] == ["new_connection"]
    logins = [p for _, p in fake.requests if "createSession" in p]
    assert len(logins) == 2
