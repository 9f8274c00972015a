"""``plnbot secrets new-key|rotate`` and the start-up key check, through the real command
line: stored credentials are Fernet tokens, readable only with PLNBOT_SECRET_KEY."""

from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlmodel import Session, select

from bot.config import Settings
from bot.vault import vault_from
from storage.db import make_engine, upgrade
from storage.models import Account, Owner, PlatformApp
from tests.support.cli import run_plnbot

TOKEN = "mastodon-access-token-that-must-never-show"


@pytest.fixture
def plnbot(tmp_path, database_url):
    def run(*args: str, **env: str):
        environment = {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path), **env}
        return run_plnbot(*args, "--db", database_url, env=environment, cwd=tmp_path)

    run.url = database_url
    return run


def store_credentials(url: str, key: str) -> None:
    """An owner with a Mastodon account connected by chat, and the instance's app."""
    vault = vault_from(Settings(_env_file=None, PLNBOT_SECRET_KEY=key))
    engine = make_engine(url)
    upgrade(engine)
    now = datetime(2026, 11, 2, tzinfo=UTC)
    with Session(engine) as session:
        owner = Owner(external_ref="local", created_at=now)
        session.add(owner)
        session.flush()
        session.add(Account(owner_id=owner.id, platform="mastodon", handle="ada@school.social",
                            credentials=vault.encrypt({"access_token": TOKEN}),
                            connected_at=now))
        session.add(PlatformApp(platform="mastodon", instance="https://school.social",
                                credentials=vault.encrypt({"client_secret": "app-secret"}),
                                created_at=now))
        session.commit()
    engine.dispose()


def stored_tokens(url: str) -> list[str]:
    engine = make_engine(url)
    with Session(engine) as session:
        tokens = [*session.exec(select(Account.credentials)),
                  *session.exec(select(PlatformApp.credentials))]
    engine.dispose()
    return [t for t in tokens if t]


def test_new_key_prints_a_fresh_fernet_key_each_time(plnbot):
    first, second = plnbot("secrets", "new-key"), plnbot("secrets", "new-key")
    assert first.returncode == second.returncode == 0, first.stderr
    keys = [first.stdout.strip(), second.stdout.strip()]
    assert keys[0] != keys[1]
    for key in keys:
        Fernet(key)  # a valid key, or this raises


def test_credentials_are_never_stored_in_plain_text(plnbot):
    key = Fernet.generate_key().decode()
    store_credentials(plnbot.url, key)
    tokens = stored_tokens(plnbot.url)
    assert len(tokens) == 2
    assert not any(TOKEN in t or "app-secret" in t for t in tokens)
    assert Fernet(key).decrypt(tokens[0].encode())


def test_rotate_re_encrypts_every_credential_under_the_new_key(plnbot):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store_credentials(plnbot.url, old)
    result = plnbot("secrets", "rotate", PLNBOT_SECRET_KEY=new, PLNBOT_SECRET_KEY_OLD=old)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 stored credentials" in result.stderr
    for token in stored_tokens(plnbot.url):
        assert Fernet(new).decrypt(token.encode())
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token.encode())
    # the old key is no longer needed
    after = plnbot("owner", "list", PLNBOT_SECRET_KEY=new)
    assert after.returncode == 0, after.stderr
    for output in (result.stdout, result.stderr, after.stdout, after.stderr):
        assert old not in output and new not in output and TOKEN not in output


@pytest.mark.parametrize("command", [("owner", "list"), ("console",), ("secrets", "rotate")])
def test_stored_credentials_without_the_key_stop_with_one_line(plnbot, command):
    store_credentials(plnbot.url, Fernet.generate_key().decode())
    result = plnbot(*command)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "PLNBOT_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("owner", "list"), ("secrets", "rotate")])
def test_a_wrong_key_stops_with_one_line(plnbot, command):
    right, wrong = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store_credentials(plnbot.url, right)
    result = plnbot(*command, PLNBOT_SECRET_KEY=wrong)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "PLNBOT_SECRET_KEY is not the key" in result.stderr or \
        "cannot be read with PLNBOT_SECRET_KEY" in result.stderr
    assert wrong not in result.stderr and right not in result.stderr


def test_a_malformed_key_is_named(plnbot):
    result = plnbot("owner", "list", PLNBOT_SECRET_KEY="not-a-key")
    assert result.returncode == 2
    assert "PLNBOT_SECRET_KEY is not a valid key" in result.stderr
    assert "not-a-key" not in result.stderr


def test_no_credentials_and_no_key_is_fine(plnbot):
    result = plnbot("owner", "list")
    assert result.returncode == 0, result.stderr


def test_rotate_with_nothing_stored_and_no_key_says_the_key_is_needed(plnbot):
    result = plnbot("secrets", "rotate")
    assert result.returncode == 2
    assert "PLNBOT_SECRET_KEY is not set" in result.stderr
