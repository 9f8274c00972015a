"""The Bluesky session is kept between polls and runs: Bluesky allows ``createSession``
30 times in 5 minutes and 300 times a day per account. The real atproto client against
the fake PDS, which issues, checks, refreshes and expires JWTs as a PDS does."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from bot.adapters.bluesky.adapter import build_source
from bot.app import App, open_database
from bot.vault import vault_from
from storage.models import Account
from tests.conftest import make_settings
from tests.support.fake_bluesky import RunningBluesky, make_profile
from tests.support.fakes import FakeSleep, FakeSurface

KEY = Fernet.generate_key().decode()


@pytest.fixture
def fake(clock):
    with RunningBluesky() as server:
        server.now = lambda: clock().timestamp()  # tokens expire by the test's clock
        yield server


def keyed_app(db_url, clock, key: str | None = KEY) -> App:
    settings = make_settings(PLNBOT_SECRET_KEY=key) if key else make_settings()
    return App(settings=settings, engine=open_database(settings, db_url),
               surface=FakeSurface(), clock=clock)


def new_source(fake, clock, password: str | None = None):
    """A source as a new process (or a connected account's next poll) makes it."""
    config = make_settings(BLUESKY_HANDLE=fake.handle, BLUESKY_APP_PASSWORD=password or
                           fake.password, BLUESKY_BASE_URL=fake.url)
    return build_source(config, clock=clock, sleep=FakeSleep(clock))


def calls(fake, nsid: str) -> int:
    return sum(nsid in path for _, path in fake.requests)


def stored_token(app: App) -> str | None:
    with Session(app.engine) as session:
        return session.exec(select(Account.credentials)
                            .where(Account.platform == "bluesky")).one()


async def test_the_session_is_reused_by_the_next_run_without_logging_in(
        fake, db_url, clock, caplog):
    caplog.set_level(logging.DEBUG)
    app = keyed_app(db_url, clock)
    for n in range(3):
        fake.follow(make_profile(f"Person{n}"))
        await new_source(fake, clock).poll(app)
        clock.advance(minutes=5)
    assert fake.logins == {fake.handle: 1}
    assert [m.kind for m in app.surface.pop()] == ["reply", "new_connection", "new_connection"]
    token = stored_token(app)
    assert token and fake.access_token not in token  # encrypted
    kept = vault_from(app.settings).decrypt(token)["session"]
    assert kept["login"] == fake.handle and fake.access_token in kept["session"]
    assert all(fake.access_token not in r.getMessage() for r in caplog.records)


async def test_an_expiring_access_token_is_refreshed_and_the_new_pair_kept(
        fake, db_url, clock):
    app = keyed_app(db_url, clock)
    await new_source(fake, clock).poll(app)
    first_refresh = set(fake.refresh_tokens)
    clock.advance(hours=1, minutes=50)  # access tokens live 2 hours
    await new_source(fake, clock).poll(app)
    assert calls(fake, "refreshSession") == 1
    assert not first_refresh & set(fake.refresh_tokens)  # rotated: the old one is gone
    clock.advance(hours=1, minutes=50)
    await new_source(fake, clock).poll(app)  # with the rotated refresh token it stored
    assert calls(fake, "refreshSession") == 2
    assert fake.logins == {fake.handle: 1} and app.surface.pop()[0].kind == "reply"


async def test_an_expired_session_leads_to_one_quiet_login(fake, db_url, clock):
    app = keyed_app(db_url, clock)
    fake.follow(make_profile("Hal"))
    await new_source(fake, clock).poll(app)
    app.surface.pop()
    fake.expire_sessions(refresh=True)  # a bot stopped for months
    fake.follow(make_profile("Ivy"))
    await new_source(fake, clock).poll(app)
    assert [m.kind for m in app.surface.pop()] == ["new_connection"]
    assert fake.logins == {fake.handle: 2}
    await new_source(fake, clock).poll(app)
    assert fake.logins == {fake.handle: 2}


async def test_a_revoked_app_password_is_told_once_and_the_session_dropped(
        fake, db_url, clock):
    app = keyed_app(db_url, clock)
    await new_source(fake, clock).poll(app)
    app.surface.pop()
    old_password = fake.password
    fake.revoke_sessions()
    fake.password = "a-new-pass-word"  # the old one was revoked on bsky.app
    source = new_source(fake, clock, password=old_password)
    for _ in range(3):
        await source.poll(app)
        clock.advance(hours=2)
    [error] = app.surface.pop()
    assert error.kind == "source_error" and "BLUESKY_APP_PASSWORD" in error.text
    assert stored_token(app) is None  # the refused session is forgotten
    source = new_source(fake, clock, password="a-new-pass-word")
    await source.poll(app)
    assert [m.kind for m in app.surface.pop()] == ["source_recovered"]


async def test_without_a_secret_key_a_process_logs_in_once_and_stores_nothing(
        fake, db_url, clock):
    app = keyed_app(db_url, clock, key=None)
    source = new_source(fake, clock)
    for _ in range(3):
        await source.poll(app)
        clock.advance(minutes=5)
    assert fake.logins == {fake.handle: 1} and stored_token(app) is None
    await new_source(fake, clock).poll(app)  # a new process: nothing kept to reuse
    assert fake.logins == {fake.handle: 2}


async def test_a_session_kept_for_another_handle_is_not_used(fake, db_url, clock):
    app = keyed_app(db_url, clock)
    await new_source(fake, clock).poll(app)
    fake.handle = "renamed.bsky.social"  # BLUESKY_HANDLE changed with it
    await new_source(fake, clock).poll(app)
    assert fake.logins == {"teacher.bsky.social": 1, "renamed.bsky.social": 1}


def test_plnbot_run_once_twice_logs_in_once(tmp_path, db_url):
    """The public path: the second `plnbot run --once` reuses the first one's session
    (stored encrypted), and neither shows a token, even at DEBUG."""
    from tests.support.cli import json_messages, run_plnbot

    with RunningBluesky() as fake:
        fake.follow(make_profile("Old Friend"))
        env = {"BLUESKY_HANDLE": fake.handle, "BLUESKY_APP_PASSWORD": fake.password,
               "BLUESKY_BASE_URL": fake.url, "PLNBOT_SECRET_KEY": KEY,
               "PLNBOT_LOG_LEVEL": "DEBUG", "PLNBOT_DATA_DIR": str(tmp_path / "data"),
               "HOME": str(tmp_path)}
        first = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
        fake.requests.clear()
        fake.follow(make_profile("New Friend"))
        second = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
        listed = run_plnbot("console", "--json", "--db", db_url, env=env,
                            stdin="accounts\ndisconnect bluesky\n")
        tokens = [fake.access_token, *fake.refresh_tokens]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert fake.logins == {fake.handle: 1}
    assert not [path for _, path in fake.requests if "createSession" in path]
    assert [m["kind"] for m in json_messages(second.stdout)] == ["new_connection"]
    accounts, refusal = json_messages(listed.stdout)
    assert "set up by the operator" in accounts["text"]
    assert "set up by the operator" in refusal["text"]
    for text in (first.stdout, first.stderr, second.stdout, second.stderr, listed.stdout,
                 listed.stderr, (tmp_path / "plnbot.sqlite3").read_bytes().decode("latin-1")):
        assert fake.password not in text
        assert all(token not in text for token in tokens)


async def test_an_unreadable_kept_session_is_replaced_by_a_login(fake, db_url, clock):
    from bot.adapters import state

    app = keyed_app(db_url, clock)
    await new_source(fake, clock).poll(app)
    kept = state.load_session(app, "bluesky") or {}
    handle, did, _, _, pds = kept["session"].split(":::")
    state.save_session(app, "bluesky", dict(kept, session=":::".join(
        [handle, did, "not-a-jwt", "not-a-jwt-either", pds])))
    await new_source(fake, clock).poll(app)
    assert fake.logins == {fake.handle: 2}
    assert [m.kind for m in app.surface.pop()] == ["reply"]  # the baseline; no error


def test_two_console_processes_sending_welcomes_log_in_once(tmp_path, db_url):
    """``plnbot console`` sends through the session stored with the account (issue #19):
    the first console after the stored session was revoked logs in once and stores the
    new one; the second console process sends with it, without createSession."""
    from tests.support.cli import json_messages, run_plnbot

    with RunningBluesky() as fake:
        env = {"BLUESKY_HANDLE": fake.handle, "BLUESKY_APP_PASSWORD": fake.password,
               "BLUESKY_BASE_URL": fake.url, "PLNBOT_SECRET_KEY": KEY,
               "PLNBOT_LOG_LEVEL": "DEBUG", "PLNBOT_DATA_DIR": str(tmp_path / "data"),
               "HOME": str(tmp_path)}
        fake.follow(make_profile("Old Friend"))
        run_plnbot("run", "--once", "--json", "--db", db_url, env=env)  # the baseline
        for name in ("Kim Lee", "Lou Park", "Max Roe"):
            fake.follow(make_profile(name))
        polled = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
        drafts = [m["draft_id"] for m in json_messages(polled.stdout)
                  if m["kind"] == "new_connection"]
        assert len(drafts) == 3 and fake.logins == {fake.handle: 1}, polled.stderr

        def console(draft_id: int):
            result = run_plnbot("console", "--json", "--db", db_url, env=env,
                                stdin=f"send {draft_id}\n")
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
            [sent] = [m for m in json_messages(result.stdout) if m.get("draft_id")]
            assert sent["kind"] == "reply" and "Sent" in sent["text"], sent
            return result

        first = console(drafts[0])  # the session `plnbot run` stored: no login
        assert fake.logins == {fake.handle: 1}
        fake.revoke_sessions()  # e.g. signed out everywhere on bsky.app
        second = console(drafts[1])  # refused: one quiet login, stored again
        third = console(drafts[2])  # another process: the stored one, no login
        tokens = [fake.access_token, *fake.refresh_tokens]
    assert fake.logins == {fake.handle: 2}
    assert len(fake.messages) == 3
    assert "createSession" not in first.stderr + third.stderr
    assert "createSession" in second.stderr
    for text in (first.stdout, first.stderr, second.stdout, second.stderr, third.stderr):
        assert fake.password not in text and all(token not in text for token in tokens)


async def test_a_console_adopts_the_session_a_poller_refreshed_since(fake, db_url, clock):
    """A console that read the session before a poller refreshed it (the refresh JWT
    rotates, so the console's one is revoked) takes the stored one instead of logging
    in; whichever of them refreshes stores it for the other."""
    from tests.support.chat import say

    poller = keyed_app(db_url, clock)
    fake.follow(make_profile("Old Friend"))
    await new_source(fake, clock).poll(poller)  # baseline: the one login
    for name in ("Kim Lee", "Lou Park"):
        fake.follow(make_profile(name))
    await new_source(fake, clock).poll(poller)
    drafts = [m.fields["draft_id"] for m in poller.surface.pop() if m.kind == "new_connection"]
    console = App(settings=poller.settings, engine=poller.engine, surface=FakeSurface(),
                  clock=clock, senders={"bluesky": new_source(fake, clock).sender})
    await say(console, f"send {drafts[0]}")
    clock.advance(hours=1, minutes=50)
    await new_source(fake, clock).poll(poller)  # refreshes; the console's pair is revoked
    assert calls(fake, "refreshSession") == 1
    sent = await say(console, f"send {drafts[1]}")
    assert [m.kind for m in sent] == ["reply"] and "Sent" in sent[0].text, sent
    assert len(fake.messages) == 2 and fake.logins == {fake.handle: 1}
    clock.advance(hours=1, minutes=50)
    await say(console, "drafts")  # the console refreshes next: the poller reads its pair
    fake.follow(make_profile("Max Roe"))
    await new_source(fake, clock).poll(poller)
    assert fake.logins == {fake.handle: 1}
