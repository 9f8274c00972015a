"""The Mastodon source and sender: real Mastodon.py over HTTP against a fake instance."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from bot.adapters.mastodon import adapter as mastodon_adapter
from bot.adapters.mastodon.adapter import MastodonSender, build_source, status_length
from bot.app import App
from bot.config import ConfigError
from bot.context import SendRefused
from bot.events import ConnectionsSevered
from storage.models import Account, Connection, Handle
from tests.conftest import make_settings
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeSleep

TEACHER = "Maths teacher at Oak Primary. #mathchat"


@pytest.fixture
def fake():
    with RunningMastodon() as server:
        yield server


@pytest.fixture
def sleep(clock) -> FakeSleep:
    return FakeSleep(clock)


def source_for(fake, clock, sleep, **settings):
    config = make_settings(MASTODON_BASE_URL=fake.url, MASTODON_ACCESS_TOKEN=fake.token,
                           **settings)
    return build_source(config, clock=clock, sleep=sleep)


@pytest.fixture
def source(fake, clock, sleep):
    return source_for(fake, clock, sleep)


def account_row(app: App) -> Account:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == "mastodon")).one()


def recorded_events(app: App) -> list:
    """Keep what the source hands to the app (and still handle it)."""
    events, handle = [], app.handle

    async def recording(event):
        events.append(event)
        await handle(event)

    app.handle = recording
    return events


async def baseline(app, fake, source, people=("ann", "bob", "cy")):
    for name in people:
        fake.follow(make_account(name, display_name=f"{name.title()} Smith", note=TEACHER))
    await source.poll(app)
    return app.surface.pop()


async def test_first_poll_is_a_quiet_baseline_and_stores_the_cursor(app, fake, source):
    messages = await baseline(app, fake, source)
    assert [m.kind for m in messages] == ["reply"]
    assert "3 existing connections" in messages[0].text
    assert account_row(app).cursor == fake.notifications[-1]["id"]
    assert account_row(app).baseline_done


async def test_new_followers_come_from_notifications_since_the_cursor(app, fake, source,
                                                                      monkeypatch):
    await baseline(app, fake, source)
    cursor = account_row(app).cursor
    monkeypatch.setattr(mastodon_adapter, "NOTIFICATION_PAGE", 2)
    names = ["dee", "eve", "fay", "gus", "hal"]
    for name in names:
        fake.follow(make_account(name, display_name=f"{name.title()} Jones", note=TEACHER))
    fake.requests.clear()

    await source.poll(app)

    arrivals = [m for m in app.surface.pop() if m.kind == "new_connection"]
    assert [m.fields["contact"]["handle"] for m in arrivals] == [
        f"{n}@school.social" for n in names]
    calls = [path for _, path in fake.requests if path.startswith("/api/v1/notifications")]
    assert f"since_id={cursor}" in calls[0]
    assert len(calls) == 3  # 5 notifications in pages of 2
    assert account_row(app).cursor == fake.notifications[-1]["id"]


async def test_a_repeated_poll_announces_nobody_twice(app, fake, source):
    await baseline(app, fake, source)
    fake.follow(make_account("dee", display_name="Dee Jones"))
    await source.poll(app)
    assert [m.kind for m in app.surface.pop()] == ["new_connection"]
    await source.poll(app)
    assert app.surface.pop() == []


async def test_a_flood_of_follows_caps_the_welcome_drafts(app, fake, source, monkeypatch):
    monkeypatch.setattr(mastodon_adapter, "NOTIFICATION_PAGE", 40)
    await baseline(app, fake, source)
    for n in range(70):
        fake.follow(make_account(f"new{n}", display_name=f"New Person{n}", note=TEACHER))
    fake.notify("follow_request", make_account("locked", display_name="Lock Ed"))
    await source.poll(app)
    kinds = [m.kind for m in app.surface.pop()]
    assert 0 < kinds.count("new_connection") < 70  # the first few dozen, drafted
    assert "follow_request" in kinds  # other notifications still handled one by one
    with Session(app.engine) as session:
        active = session.exec(select(Connection).where(Connection.state == "active")).all()
    assert len(active) == 3 + 70
    assert account_row(app).cursor == fake.notifications[-1]["id"]
    await source.poll(app)
    assert app.surface.pop() == []  # nobody announced twice


async def test_local_accounts_get_the_instance_domain(app, fake, source):
    await baseline(app, fake, source)
    fake.follow(make_account("local", domain=None, display_name="Local Person"))
    await source.poll(app)
    [arrival] = app.surface.pop()
    assert arrival.fields["contact"]["handle"] == "local@localhost:3000"


async def test_reconciliation_finds_who_left(app, fake, source, clock, monkeypatch):
    monkeypatch.setattr(mastodon_adapter, "FOLLOWER_PAGE", 2)
    await baseline(app, fake, source, people=("ann", "bob", "cy", "dee", "eve"))
    gone = fake.followers.pop(1)  # "dee" unfollows: no notification for that
    await source.poll(app)
    assert app.surface.pop() == []  # not due yet
    clock.advance(hours=25)

    await source.poll(app)

    with Session(app.engine) as session:
        lost = session.exec(
            select(Handle.handle).join(Connection, Connection.handle_id == Handle.id)
            .where(Connection.state == "lost")).all()
    assert lost == [gone["acct"]]
    follower_pages = [p for _, p in fake.requests if "/followers" in p]
    assert any("max_id=" in p for p in follower_pages)


async def test_a_mass_drop_is_rechecked_after_15_minutes_not_the_next_day(app, fake, source,
                                                                           clock):
    await baseline(app, fake, source, people=[f"teacher{n}" for n in range(30)])
    everyone = list(fake.followers)
    del fake.followers[5:]  # the instance answers with 5 of 30 for a while
    clock.advance(hours=25)
    await source.poll(app)
    assert [m.kind for m in app.surface.pop()] == ["connections_vanished"]
    fake.followers[:] = everyone
    clock.advance(minutes=16)
    await source.poll(app)  # the mass drop's first re-check, 23 hours before the daily one
    [message] = app.surface.pop()
    assert message.kind == "connections_returned" and message.fields["returned"] == 25


async def test_an_interrupted_follower_list_removes_nobody(app, fake, source, clock,
                                                           monkeypatch):
    monkeypatch.setattr(mastodon_adapter, "FOLLOWER_PAGE", 2)
    await baseline(app, fake, source, people=("ann", "bob", "cy", "dee", "eve"))
    clock.advance(hours=25)
    fake.fail("/followers", 502)  # the first page of the reconciliation
    await source.poll(app)
    app.surface.pop()
    clock.advance(hours=2)
    fake.failures = []
    real_fetch = source.client.api.fetch_next

    def failing_fetch(page):
        fake.fail("/followers", 503)
        return real_fetch(page)

    monkeypatch.setattr(source.client.api, "fetch_next", failing_fetch)
    await source.poll(app)
    assert not [m for m in app.surface.pop() if m.kind == "connection_lost"]
    with Session(app.engine) as session:
        states = session.exec(select(Connection.state)).all()
    assert set(states) == {"active"}


async def test_severed_relationships_name_the_cause_and_the_people(app, fake, source):
    fake.follow(make_account("ann", domain="gone.example"))
    fake.follow(make_account("bob", domain="gone.example"))
    fake.follow(make_account("cy", domain="school.social"))
    await source.poll(app)
    app.surface.pop()
    events = recorded_events(app)
    fake.sever("domain_block", "gone.example", followers=2)

    await source.poll(app)

    [severed] = [e for e in events if isinstance(e, ConnectionsSevered)]
    assert (severed.kind, severed.cause) == ("follower", "domain_block:gone.example")
    with Session(app.engine) as session:
        handles = {h.external_id: h.handle for h in session.exec(select(Handle))}
        causes = session.exec(select(Connection.lost_cause).where(
            Connection.state == "lost")).all()
    assert sorted(handles[i] for i in severed.external_ids) == [
        "ann@gone.example", "bob@gone.example"]
    assert causes == ["domain_block:gone.example"] * 2
    [report] = [m for m in app.surface.pop() if m.kind == "connection_lost"]
    assert "your server blocked gone.example" in report.text


async def test_a_follow_request_shows_who_asks_and_where_to_decide(app, fake, source):
    await baseline(app, fake, source)
    fake.notify("follow_request", make_account("ivy", display_name="Ivy Chen",
                                               note="Science teacher in Leeds", locked=True))
    await source.poll(app)
    await source.poll(app)  # seen once, told once
    [request] = app.surface.pop()
    assert request.kind == "follow_request"
    assert "Ivy Chen (@ivy@school.social) asked to follow you on Mastodon" in request.text
    assert "Science teacher in Leeds" in request.text
    assert "Approve or deny it on Mastodon" in request.text


async def test_the_user_stream_delivers_and_polling_takes_over_when_it_drops(
        app, fake, clock, sleep):
    source = source_for(fake, clock, sleep, MASTODON_STREAMING="true")
    await baseline(app, fake, source)  # also opens the stream, which ends at once
    follow = fake.notify("follow", make_account("sam", display_name="Sam Stream"))
    fake.notifications.remove(follow)  # only the stream knows about Sam
    fake.stream_events.append(follow)
    await _wait_until(lambda: source.stream is not None and not source.stream.is_alive())
    await source.poll(app)  # the stream had dropped: polled, and the stream reopened
    await _wait_until(lambda: app.surface.messages)
    await _wait_until(lambda: not source.stream.is_alive())
    [arrival] = app.surface.pop()
    assert arrival.fields["contact"]["handle"] == "sam@school.social"
    assert account_row(app).cursor == follow["id"]
    source.close()


async def _wait_until(condition, seconds: float = 10.0) -> None:
    """Wait for the stream's thread (real concurrency, not a timed assertion)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_rate_limit_headers_make_the_poll_wait_with_the_injected_clock(
        app, fake, source, clock, sleep):
    fake.ratelimit_remaining = 2
    fake.ratelimit_reset = clock.now.replace(minute=3)
    await baseline(app, fake, source)
    assert sleep.calls and sleep.calls[0] == pytest.approx(180, abs=1)


async def test_a_429_waits_for_the_window_and_retries(app, fake, source, clock, sleep):
    await baseline(app, fake, source)
    fake.ratelimit_reset = clock.now.replace(minute=10)
    fake.fail("/api/v1/notifications", 429)
    fake.follow(make_account("dee", display_name="Dee Jones"))
    await source.poll(app)
    assert sleep.calls == [pytest.approx(600, abs=1)]
    assert [m.kind for m in app.surface.pop()] == ["new_connection"]


async def test_a_bad_token_is_reported_once_naming_the_variable(app, fake, clock, sleep):
    config = make_settings(MASTODON_BASE_URL=fake.url, MASTODON_ACCESS_TOKEN="wrong-token-1234")
    source = build_source(config, clock=clock, sleep=sleep)
    for _ in range(3):
        await source.poll(app)
        clock.advance(hours=2)
    [error] = app.surface.pop()
    assert error.kind == "source_error"
    assert "MASTODON_ACCESS_TOKEN" in error.text and "401" in error.text
    assert "wrong-token-1234" not in error.text
    assert account_row(app).last_error == f"auth: {error.text}"


async def test_an_unreachable_instance_backs_off_and_reports_once(app, fake, source, clock):
    fake.fail("verify_credentials", 502, times=3)
    await source.poll(app)
    [error] = app.surface.pop()
    assert "Cannot reach your Mastodon instance" in error.text and "HTTP 502" in error.text
    fake.requests.clear()
    await source.poll(app)  # within the back-off: not even tried
    assert fake.requests == []
    for _ in range(2):
        clock.advance(hours=1)
        await source.poll(app)
    assert app.surface.pop() == []  # still failing, already reported
    clock.advance(hours=1)
    await source.poll(app)
    kinds = [m.kind for m in app.surface.pop()]
    assert kinds == ["reply", "source_recovered"]  # the baseline, then works again
    assert account_row(app).last_error is None


def handle_of(acct: str):
    return SimpleNamespace(handle=acct.lower(), display_handle=acct, external_id="1")


async def test_a_welcome_goes_out_as_a_direct_status_mentioning_the_person(fake, source):
    reply = await source.sender.send_welcome(handle=handle_of("jane@school.social"),
                                             text="Welcome, Jane!")
    [posted] = fake.statuses
    assert posted["status"] == "@jane@school.social Welcome, Jane!"
    assert posted["visibility"] == "direct"
    assert posted["idempotency_key"]
    assert reply.startswith("Sent to @jane@school.social as a direct message on Mastodon")


async def test_a_welcome_over_the_instance_limit_is_refused(fake, source):
    fake.max_characters = 60
    with pytest.raises(SendRefused, match="instance allows 60"):
        await source.sender.send_welcome(handle=handle_of("jane@school.social"),
                                         text="Welcome! " * 10)
    assert fake.statuses == []


async def test_a_refused_post_says_why(fake, source):
    fake.fail("/api/v1/statuses", 403)
    with pytest.raises(SendRefused, match="MASTODON_ACCESS_TOKEN"):
        await source.sender.send_welcome(handle=handle_of("jane@school.social"), text="Hi")
    fake.fail("/api/v1/statuses", 503)
    with pytest.raises(SendRefused, match="Try `send` again later"):
        await source.sender.send_welcome(handle=handle_of("jane@school.social"), text="Hi")


def test_mastodon_counts_links_and_remote_mentions_short():
    assert status_length("@jane@school.social hi") == len("@jane hi")
    assert status_length("see https://example.org/a/very/long/path/indeed") == 4 + 23


def test_half_a_configuration_is_a_clear_error():
    with pytest.raises(ConfigError, match="MASTODON_ACCESS_TOKEN"):
        build_source(make_settings(MASTODON_BASE_URL="https://mastodon.social"))
    assert build_source(make_settings()) is None


def test_the_app_registers_the_sources_sender(fake, settings, db_url, surface):
    from bot.app import open_database
    from bot.runner import configured_sources

    config = make_settings(MASTODON_BASE_URL=fake.url, MASTODON_ACCESS_TOKEN=fake.token)
    app = App(settings=settings, engine=open_database(settings, db_url), surface=surface,
              sources=configured_sources(config))
    assert isinstance(app.senders["mastodon"], MastodonSender)


def test_plnbot_run_once_polls_mastodon_and_resumes_from_the_database(fake, db_url):
    from tests.support.cli import json_messages, run_plnbot

    env = {"MASTODON_BASE_URL": fake.url, "MASTODON_ACCESS_TOKEN": fake.token}
    fake.follow(make_account("ann", display_name="Ann Smith", note=TEACHER))
    first = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    assert first.returncode == 0, first.stderr
    assert [m["kind"] for m in json_messages(first.stdout)] == ["reply"]
    fake.follow(make_account("bob", display_name="Bob Jones", note=TEACHER))
    second = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    [arrival] = json_messages(second.stdout)
    assert arrival["kind"] == "new_connection"
    assert arrival["contact"]["handle"] == "bob@school.social"
    assert fake.token not in first.stderr + second.stderr
