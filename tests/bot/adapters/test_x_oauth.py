"""``connect x``: OAuth 2.0 with PKCE against the operator's X app, with the real tweepy
handler, the pasted code, and refresh tokens rotated before the access token expires."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from bot.adapters import x_oauth
from bot.app import App, open_database
from bot.connecting import ConnectRefused
from bot.vault import vault_from
from storage.models import Account
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.fakes import FakeClock, FakeSurface
from tests.support.x_api import recorded_me
from tests.support.x_oauth import FakeXOAuth

CLIENT_ID = "cGxuYm90LXRlc3QtY2xpZW50OjE6Y2k"
CALLBACK = "https://plnbot.example.org/x/callback"


@pytest.fixture
def fake_x():
    fake = FakeXOAuth(client_id=CLIENT_ID)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        yield fake


@pytest.fixture
def app(db_url) -> App:
    settings = make_settings(PLNBOT_SECRET_KEY=Fernet.generate_key().decode(),
                             X_CLIENT_ID=CLIENT_ID, X_REDIRECT_URI=CALLBACK)
    return App(settings=settings, engine=open_database(settings, db_url), surface=FakeSurface(),
               clock=FakeClock())


def x_account(app: App) -> Account:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == "x")).one()


@pytest.mark.parametrize("paste", ["code", "callback address"])
async def test_connect_x_with_the_pasted_code(app, fake_x, paste):
    reply = await say_one(app, "connect x")
    assert reply.fields["url"].startswith("https://twitter.com/i/oauth2/authorize?")
    code = fake_x.authorize(reply.fields["url"])
    pasted = code if paste == "code" else f"{CALLBACK}?state=whatever&code={code}"
    done = await say_one(app, pasted)
    assert done.kind == "reply", done.text
    assert done.text.startswith(f"Connected {recorded_me()['username']} on X")
    stored = x_account(app)
    assert stored.external_id == recorded_me()["id"] and stored.connected_at
    credentials = vault_from(app.settings).decrypt(stored.credentials)
    assert credentials["access_token"] in fake_x.access_tokens
    assert credentials["refresh_token"] in fake_x.refresh_tokens


async def test_a_code_without_its_verifier_is_refused(app, fake_x):
    """X checks the PKCE verifier: a code from another authorization does not work."""
    first = await say_one(app, "connect x")
    await say_one(app, "connect x")  # a second link replaces the first one's verifier
    refused = await say_one(app, fake_x.authorize(first.fields["url"]))
    assert refused.kind == "error" and "X did not accept that code" in refused.text
    assert x_account(app).connected_at is None


async def test_connect_x_needs_the_operators_app(db_url):
    settings = make_settings(PLNBOT_SECRET_KEY=Fernet.generate_key().decode())
    app = App(settings=settings, engine=open_database(settings, db_url), surface=FakeSurface(),
              clock=FakeClock())
    reply = await say_one(app, "connect x")
    assert reply.kind == "error" and "X_CLIENT_ID and X_REDIRECT_URI" in reply.text


async def test_refresh_rotates_the_refresh_token_before_expiry(app, fake_x):
    clock = FakeClock()
    first = x_oauth.token_credentials(issued(fake_x), clock())
    assert not x_oauth.needs_refresh(first, clock())
    clock.advance(seconds=7200 - 10 * 60)  # 10 minutes before it expires
    assert x_oauth.needs_refresh(first, clock())
    second = await x_oauth.refresh(app.settings, first, now=clock())
    assert second["refresh_token"] != first["refresh_token"]
    assert second["refresh_token"] in fake_x.refresh_tokens
    assert not x_oauth.needs_refresh(second, clock())
    with pytest.raises(ConnectRefused, match="connect x"):  # the old one was retired
        await x_oauth.refresh(app.settings, first, now=clock() + timedelta(seconds=1))


def issued(fake: FakeXOAuth) -> dict:
    """A token response the fake issued (as after a `connect x`)."""
    return json.loads(fake._issue()[2])
