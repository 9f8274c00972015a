"""``connect``, ``accounts``, ``disconnect`` through the chat, with the real Mastodon.py
and atproto clients against the fake servers (which refuse what the real ones refuse)."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import AsyncMock, MagicMock
from urllib.parse import parse_qs, urlparse

import discord
import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from bot.app import App, open_database
from bot.vault import vault_from
from storage.models import Account, PlatformApp
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.discord_mocks import GUILD_ID, OWNER_ID, mock_guild, mock_member
from tests.support.factories import command
from tests.support.fake_bluesky import HANDLE, PASSWORD, RunningBluesky
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeClock, FakeSurface

KEY = Fernet.generate_key().decode()


def make_app(db_url: str, clock: FakeClock | None = None, **values: str) -> App:
    settings = make_settings(PLNBOT_SECRET_KEY=KEY, **values)
    return App(settings=settings, engine=open_database(settings, db_url), surface=FakeSurface(),
               clock=clock or FakeClock())


@pytest.fixture
def app(db_url) -> App:
    return make_app(db_url)


async def said(app: App, text: str) -> list:
    """What the bot answered ``app``'s own owner (whoever PLNBOT_OWNER names)."""
    await app.handle(command(text, owner_ref=app.settings.owner_ref))
    return app.surface.pop()


def account(app: App, platform: str) -> Account | None:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == platform)).first()


def client_id_in(url: str) -> str:
    return parse_qs(urlparse(url).query)["client_id"][0]


async def test_connect_mastodon_registers_once_and_the_pasted_code_connects(app):
    with RunningMastodon() as fake:
        reply = await say_one(app, f"connect mastodon {fake.url}")
        assert reply.kind == "reply" and "paste here the code" in reply.text
        link = reply.fields["url"]
        assert link.startswith(f"{fake.url}/oauth/authorize?")
        query = parse_qs(urlparse(link).query)
        assert query["redirect_uri"] == ["urn:ietf:wg:oauth:2.0:oob"]
        assert query["scope"] == ["read:accounts read:follows read:notifications "
                                  "write:statuses"]
        assert len(fake.apps) == 1

        code = fake.authorize(client_id_in(link))
        done = await say_one(app, code)
        assert done.kind == "reply" and done.text.startswith("Connected owner@127.0.0.1")
        stored = account(app, "mastodon")
        assert stored.connected_at is not None and not stored.baseline_done
        token = next(iter(fake.issued_tokens))
        assert token not in stored.credentials and code not in stored.credentials
        assert vault_from(app.settings).decrypt(stored.credentials)["access_token"] == token

        # a second owner on the same instance reuses the registered app
        bob = make_app(str(app.engine.url), PLNBOT_OWNER="bob")
        (again,) = await said(bob, f"connect mastodon {fake.url}")
        assert client_id_in(again.fields["url"]) == client_id_in(link)
        assert len(fake.apps) == 1
    with Session(app.engine) as session:
        (registered,) = session.exec(select(PlatformApp)).all()
    assert "client_secret" not in registered.credentials


async def test_a_wrong_or_reused_code_is_one_error_and_changes_nothing(app):
    with RunningMastodon() as fake:
        reply = await say_one(app, f"connect mastodon {fake.url}")
        code = fake.authorize(client_id_in(reply.fields["url"]))
        wrong = await say_one(app, "x" * 40)
        assert wrong.kind == "error" and "did not accept that code" in wrong.text
        assert account(app, "mastodon").connected_at is None
        assert (await say_one(app, code)).kind == "reply"
        reused = await say_one(app, code)  # the connection is made: nothing waits for a code
        assert reused.kind == "error" and "I don't know the command" in reused.text


async def test_connect_mastodon_refuses_what_is_no_instance(app):
    bad = await say_one(app, "connect mastodon not a url")
    assert bad.kind == "error" and "connect mastodon <instance>" in bad.text
    with RunningMastodon() as fake:
        fake.fail("/api/v1/apps", 404)
        missing = await say_one(app, f"connect mastodon {fake.url}")
    assert missing.kind == "error" and "did not register" in missing.text
    with Session(app.engine) as session:
        assert session.exec(select(PlatformApp)).first() is None


async def test_connect_bluesky_checks_the_password_and_never_repeats_it(db_url):
    app = make_app(db_url, PLNBOT_OWNER="discord:123456789012345678")
    with RunningBluesky() as fake:
        wrong = await said(app, f"connect bluesky {HANDLE} wrong-pass-word-1234 {fake.url}")
        assert [m.kind for m in wrong] == ["error"]
        assert "did not accept that handle and app password" in wrong[0].text
        assert "wrong-pass-word-1234" not in wrong[0].text
        assert account(app, "bluesky") is None

        (right,) = await said(app, f"connect bluesky @{HANDLE} {PASSWORD} {fake.url}")
    assert right.kind == "reply" and f"Connected @{HANDLE} on Bluesky" in right.text
    assert "please delete it" in right.text  # the owner talks to the bot on Discord
    assert PASSWORD not in right.text
    stored = account(app, "bluesky")
    assert PASSWORD not in stored.credentials
    assert vault_from(app.settings).decrypt(stored.credentials)["server"] == fake.url


async def test_accounts_lists_and_disconnect_deletes_the_credentials(app):
    empty = await say_one(app, "accounts")
    assert "No accounts connected yet" in empty.text
    with RunningBluesky() as fake:
        await say_one(app, f"connect bluesky {HANDLE} {PASSWORD} {fake.url}")
    listed = await say_one(app, "accounts")
    assert f"Bluesky: {HANDLE} (connected; first look pending)" in listed.text
    assert PASSWORD not in listed.text

    gone = await say_one(app, "disconnect bluesky")
    assert gone.kind == "reply" and "deleted the stored credentials" in gone.text
    stored = account(app, "bluesky")
    assert stored.credentials is None and stored.connected_at is None
    again = await say_one(app, "disconnect bluesky")
    assert again.kind == "error" and "no Bluesky account connected" in again.text


async def test_without_a_secret_key_nothing_is_connected(db_url):
    settings = make_settings()
    app = App(settings=settings, engine=open_database(settings, db_url), surface=FakeSurface(),
              clock=FakeClock())
    with RunningBluesky() as fake:
        reply = await say_one(app, f"connect bluesky {HANDLE} {PASSWORD} {fake.url}")
    assert reply.kind == "error" and "PLNBOT_SECRET_KEY" in reply.text
    assert account(app, "bluesky") is None


async def test_connect_without_a_platform_shows_every_form(app):
    reply = await say_one(app, "connect")
    assert reply.kind == "error"
    for form in ("connect mastodon <instance>", "connect x", "connect discord-server <id>",
                 "connect bluesky <handle> <app password> [<server URL>]"):
        assert form in reply.text


@pytest.mark.parametrize(("present", "manage", "answer"), [
    (True, True, "Connected the Discord server Staffroom"),
    (True, False, "You need the Manage Server permission in Staffroom"),
    (False, True, "The bot is not in a server with the id"),
])
async def test_connect_discord_server_needs_the_bot_there_and_manage_server(
        db_url, present, manage, answer):
    member = mock_member(member_id=OWNER_ID)
    member.guild_permissions = discord.Permissions(manage_guild=manage)
    guild = mock_guild([member])
    guild.get_member = MagicMock(return_value=member)
    client = MagicMock(spec=discord.Client)
    client.get_guild = MagicMock(return_value=guild if present else None)
    client.fetch_guild = AsyncMock(side_effect=discord.NotFound(MagicMock(status=404), "gone"))
    app = make_app(db_url, PLNBOT_OWNER=f"discord:{OWNER_ID}")
    app.dispatcher.connector.discord = client
    (reply,) = await said(app, f"connect discord-server {GUILD_ID}")
    assert answer in reply.text
    stored = account(app, "discord")
    assert (stored is not None and stored.connected_at is not None) == (present and manage)


async def test_an_account_from_the_environment_is_not_connected_twice(db_url):
    app = make_app(db_url, MASTODON_BASE_URL="https://school.social",
                   MASTODON_ACCESS_TOKEN="env-token-1234")
    reply = await say_one(app, "connect mastodon school.social")
    assert reply.kind == "error" and "set up by the operator" in reply.text
    assert account(app, "mastodon") is None


async def test_an_unreachable_server_is_said_as_such(app):
    with RunningBluesky() as fake:
        url = fake.url  # nothing listens there once the block ends
    reply = await say_one(app, f"connect bluesky {HANDLE} {PASSWORD} {url}")
    assert reply.kind == "error" and f"Cannot reach {url}" in reply.text
    assert PASSWORD not in reply.text


async def test_an_export_never_holds_credentials(db_url, tmp_path):
    app = make_app(db_url, PLNBOT_DATA_DIR=str(tmp_path / "data"))
    with RunningBluesky() as fake:
        await say_one(app, f"connect bluesky {HANDLE} {PASSWORD} {fake.url}")
    exported = await say_one(app, "export")
    text = Path(exported.fields["path"]).read_text(encoding="utf-8")
    assert HANDLE in text  # the account is in it, its credentials are not
    assert PASSWORD not in text and "credentials" not in text
    assert account(app, "bluesky").credentials not in text


async def test_a_code_awaited_the_old_way_connects_a_second_account(app):
    """Before several accounts per platform, a wait for a code was kept inside the
    connected account's credentials. Pasted after the upgrade, the code connects the
    other account next to it, and the first keeps its credentials without the wait."""
    vault = vault_from(app.settings)
    with RunningMastodon() as home, RunningMastodon() as school:
        school.me = make_account("ada", domain=None)
        reply = await say_one(app, f"connect mastodon {home.url}")
        await say_one(app, home.authorize(client_id_in(reply.fields["url"])))
        link = (await say_one(app, f"connect mastodon {school.url}")).fields["url"]
        with Session(app.engine) as session:  # the wait, moved where the old code kept it
            first, waiting = session.exec(select(Account).order_by(Account.id)).all()
            kept = vault.decrypt(first.credentials)
            first.credentials = vault.encrypt(
                {**kept, "pending": vault.decrypt(waiting.credentials)["pending"]})
            session.delete(waiting)
            session.add(first)
            session.commit()
        done = await say_one(app, school.authorize(client_id_in(link)))
    assert done.kind == "reply" and done.text.startswith("Connected ada@")
    with Session(app.engine) as session:
        first, second = session.exec(select(Account).order_by(Account.id)).all()
    assert first.connected_at and second.connected_at and first.id != second.id
    assert vault.decrypt(first.credentials) == kept  # the wait is gone, the token kept
    assert second.external_id == school.me["id"]
    again = await say_one(app, "x" * 40)  # nothing waits for a code any more
    assert again.kind == "error" and "I don't know the command" in again.text
