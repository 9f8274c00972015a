"""plnbot against the atproto reference servers (PLC + PDS + bsky AppView from
``@atproto/dev-env``): the real CLI, the real ``atproto`` client, a real server.

People are created and follow the owner through the PDS with the ``atproto`` library, the
AppView indexes them from the PDS's firehose, and ``plnbot run --once --json`` reads them
back through ``BLUESKY_BASE_URL`` exactly as it reads bsky.social.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from atproto import Client, models

from tests.support.cli import ROOT, json_messages, run_plnbot

pytestmark = pytest.mark.peers

PASSWORD = "peer-test-password"


@dataclass
class Person:
    """An account on the PDS, logged in with the ``atproto`` library."""

    handle: str
    name: str
    did: str
    client: Client

    def follow(self, other: Person) -> str:
        record = models.AppBskyGraphFollow.Record(subject=other.did,
                                                  created_at=self.client.get_current_time_iso())
        return self.client.app.bsky.graph.follow.create(self.did, record).uri

    def unfollow(self, follow_uri: str) -> None:
        assert self.client.delete_follow(follow_uri)


def create_person(peer, handle: str, name: str, bio: str) -> Person:
    """Create the account (handles must end in .test on dev-env's PDS) and its profile.

    The AppView learns of a new account from the PDS's firehose a moment later, so the
    login does not ask it for the profile (``fetch_bsky_profile=False``), as plnbot does."""
    client = Client(base_url=peer.pds)
    account = client.com.atproto.server.create_account(models.ComAtprotoServerCreateAccount.Data(
        handle=handle, email=f"{handle.split('.')[0]}@example.com", password=PASSWORD))
    client.login(handle, PASSWORD, fetch_bsky_profile=False)
    client.com.atproto.repo.put_record(models.ComAtprotoRepoPutRecord.Data(
        repo=account.did, collection="app.bsky.actor.profile", rkey="self",
        record={"$type": "app.bsky.actor.profile", "displayName": name, "description": bio}))
    return Person(handle=handle, name=name, did=account.did, client=client)


def app_password(person: Person) -> str:
    """An app password that may use direct messages, as the README tells the owner."""
    created = person.client.com.atproto.server.create_app_password(
        models.ComAtprotoServerCreateAppPassword.Data(name="plnbot", privileged=True))
    return created.password


@pytest.fixture(scope="module")
def world(atproto_peer):
    owner = create_person(atproto_peer, "sam-rivera.test", "Sam Rivera",
                          "Deputy head, primary. Outdoor learning and reading for pleasure.")
    return {"owner": owner, "password": app_password(owner)}


@pytest.fixture
def bot(atproto_peer, world, tmp_path):
    """``plnbot run --once --json`` on one database, against the PDS."""
    db = f"sqlite:///{tmp_path / 'peer.sqlite3'}"
    base = {"BLUESKY_BASE_URL": atproto_peer.pds, "BLUESKY_HANDLE": world["owner"].handle,
            "BLUESKY_APP_PASSWORD": world["password"], "PLNBOT_OWNER_NAME": "Sam Rivera",
            "PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}

    def run(*args: str, stdin: str = "", **env: str) -> list[dict]:
        atproto_peer.process()  # the AppView has indexed every write made so far
        command = args or ("run", "--once", "--json")
        result = run_plnbot(*command, "--db", db, stdin=stdin, env={**base, **env})
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        for secret in (world["password"], PASSWORD):
            assert secret not in result.stdout + result.stderr
        return json_messages(result.stdout)

    run.db = db
    run.env = base
    return run


def kinds(messages: list[dict]) -> list[str]:
    return [m["kind"] for m in messages]


def test_followers_losses_returns_and_welcomes_against_the_reference_pds(
        atproto_peer, world, bot, tmp_path):
    owner = world["owner"]
    early = [create_person(atproto_peer, "amara-okafor.test", "Amara Okafor",
                           "Year 2 teacher in Leeds. Phonics, forest school."),
             create_person(atproto_peer, "ben-hughes.test", "Ben Hughes",
                           "School librarian. Graphic novels for reluctant readers.")]
    for person in early:
        person.follow(owner)

    # 1. the first poll is the quiet baseline: the two followers, no welcome drafts
    [baseline] = bot()
    assert baseline["kind"] == "reply" and "2 existing connections" in baseline["text"]

    # 2. two people follow: one new_connection each, with a personal draft
    chidi = create_person(atproto_peer, "chidi-nwosu.test", "Chidi Nwosu",
                          "Secondary physics teacher in Manchester. Runs the robotics club. "
                          "#STEM #edtech")
    dana = create_person(atproto_peer, "dana-kowalski.test", "Dana Kowalski",
                         "Museum educator at the science museum; family learning days.")
    chidi_follow = chidi.follow(owner)
    dana.follow(owner)
    arrivals = bot()
    assert kinds(arrivals) == ["new_connection", "new_connection"], arrivals
    by_handle = {m["contact"]["handle"]: m for m in arrivals}
    assert set(by_handle) == {chidi.handle, dana.handle}
    assert by_handle[chidi.handle]["contact"]["name"] == "Chidi Nwosu"
    for person, message in ((chidi, by_handle[chidi.handle]), (dana, by_handle[dana.handle])):
        assert message["platform"] == "bluesky" and message["draft_id"]
        assert person.name.split()[0] in message["draft"], message["draft"]
    assert by_handle[chidi.handle]["draft"] != by_handle[dana.handle]["draft"]
    assert bot() == []  # nothing new: the cursor kept its place

    # 3. an unfollow is noticed by the next reconciliation, not before
    [settings] = bot("console", "--json", stdin="settings losses immediate\n")
    assert settings["kind"] == "reply"
    chidi.unfollow(chidi_follow)
    assert bot() == []  # reconciliation not due yet (PLNBOT_RECONCILE_HOURS=24)
    time.sleep(1)
    [lost] = bot(PLNBOT_RECONCILE_HOURS="0.0002")  # due after 0.72 s
    assert lost["kind"] == "connection_lost", lost
    assert "Chidi Nwosu" in lost["text"]

    # 4. they follow again: a welcome back, not a second first welcome
    chidi.follow(owner)
    [back] = bot()
    assert back["kind"] == "welcome_back", back
    assert back["contact"]["name"] == "Chidi Nwosu"

    # 5. send: the open-source stack has no chat service, so the bot says so and gives the
    # text to send by hand; the draft keeps waiting
    draft_id = by_handle[dana.handle]["draft_id"]
    sent = run_on_terminal(bot, f"send {draft_id}\n")
    [refusal] = [m for m in sent if m.get("draft_id") == draft_id]
    assert refusal["kind"] == "error" and refusal["status"] == "pending", refusal
    assert "chat" in refusal["text"] and "by hand" in refusal["text"], refusal["text"]
    assert refusal["fallback"] == by_handle[dana.handle]["draft"]
    first_line = refusal["fallback"].splitlines()[0]
    assert refusal["text"].count(first_line) == 1, refusal["text"]  # the text, once
    assert ".." not in refusal["text"]
    assert "may or may not" not in refusal["text"]
    [listing] = bot("console", "--json", stdin="drafts\n")
    assert f"#{draft_id}" in listing["text"]


def test_a_wrong_then_right_app_password(atproto_peer, world, bot):
    [error] = bot(BLUESKY_APP_PASSWORD="wrong-wrong-wrong")
    assert error["kind"] == "source_error" and error["problem"] == "auth", error
    assert "BLUESKY_APP_PASSWORD" in error["text"]
    assert bot(BLUESKY_APP_PASSWORD="wrong-wrong-wrong") == []  # said once, not every poll
    messages = bot()
    [recovered] = [m for m in messages if m["kind"] == "source_recovered"]
    assert recovered["platform"] == "bluesky" and recovered["problem"] == "auth"


def test_the_session_is_kept_between_runs_by_the_reference_pds(atproto_peer, world, bot):
    """Bluesky allows 300 logins a day: with PLNBOT_SECRET_KEY the second
    ``plnbot run --once`` uses the session the first stored (the PDS accepts it: no
    createSession, no error); one the PDS refuses leads to a new login, said to nobody.
    ``plnbot console`` sending a welcome uses the same stored session."""
    from cryptography.fernet import Fernet, MultiFernet
    from sqlalchemy import create_engine, text

    from bot.vault import Vault

    key = Fernet.generate_key().decode()
    logged = {"PLNBOT_SECRET_KEY": key, "PLNBOT_LOG_LEVEL": "INFO"}

    def run_logged() -> tuple[list[dict], str]:
        result = run_plnbot("run", "--once", "--json", "--db", bot.db,
                            env={**bot.env, **logged})
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return json_messages(result.stdout), result.stderr

    bot()  # the baseline (or nothing new), without a key: nothing stored
    first, first_log = run_logged()
    second, second_log = run_logged()
    assert "createSession" in first_log and "createSession" not in second_log
    assert not [m for m in first + second if m["kind"] == "source_error"]
    with create_engine(bot.db).connect() as connection:
        stored = connection.execute(text(
            "SELECT credentials FROM account WHERE platform = 'bluesky'")).scalar_one()
    vault = Vault(MultiFernet([Fernet(key)]))
    kept = vault.decrypt(stored)["session"]
    handle, did, access, refresh, pds = kept["session"].split(":::")
    assert did == world["owner"].did
    assert access not in first_log + second_log and refresh not in first_log + second_log

    # the stored tokens no longer match what the PDS issued: it refuses them
    broken = dict(kept, session=":::".join([handle, did, access[:-6] + "AAAAAA",
                                            refresh[:-6] + "AAAAAA", pds]))
    with create_engine(bot.db).begin() as connection:
        connection.execute(text("UPDATE account SET credentials = :c WHERE platform = "
                                "'bluesky'"), {"c": vault.encrypt({"session": broken})})
    third, third_log = run_logged()
    assert "createSession" in third_log, third_log
    assert not [m for m in third if m["kind"] == "source_error"], third
    _, fourth_log = run_logged()
    assert "createSession" not in fourth_log

    # a console sending a welcome (refused here: no chat service) logs in only when the
    # stored session is refused, and stores the new one for the next console (issue #19)
    create_person(atproto_peer, "eli-moss.test", "Eli Moss", "Maths teacher.").follow(
        world["owner"])
    atproto_peer.process()
    fifth, _ = run_logged()
    [arrival] = [m for m in fifth if m["kind"] == "new_connection"]
    kept = vault.decrypt(connection_credentials(bot.db))["session"]
    handle, did, access, refresh, pds = kept["session"].split(":::")
    with create_engine(bot.db).begin() as connection:
        connection.execute(text("UPDATE account SET credentials = :c WHERE platform = "
                                "'bluesky'"), {"c": vault.encrypt({"session": dict(
                                    kept, session=":::".join([handle, did, access[:-6] +
                                                              "AAAAAA", refresh, pds]))})})
    for logs_in in (True, False):
        console = run_plnbot("console", "--json", "--db", bot.db, env={**bot.env, **logged},
                             stdin=f"send {arrival['draft_id']}\n")
        assert console.returncode == 0 and "Traceback" not in console.stderr, console.stderr
        [refusal] = [m for m in json_messages(console.stdout)
                     if m.get("draft_id") == arrival["draft_id"]]
        assert "by hand" in refusal["text"] and "BLUESKY_APP_PASSWORD" not in refusal["text"]
        assert ("createSession" in console.stderr) is logs_in, console.stderr


def connection_credentials(db: str) -> str:
    """The owner's Bluesky account's encrypted credentials, as stored."""
    from sqlalchemy import create_engine, text

    with create_engine(db).connect() as connection:
        return connection.execute(text(
            "SELECT credentials FROM account WHERE platform = 'bluesky'")).scalar_one()


def run_on_terminal(bot, lines: str) -> list[dict]:
    """``plnbot run --json`` with a terminal on stdin (where it reads the owner's commands),
    ``lines`` typed, then Ctrl-D."""
    atproto_peer_env = {k: v for k, v in os.environ.items()
                        if not k.startswith(("PLNBOT_", "DATABASE_URL", "BLUESKY_"))}
    env = {**atproto_peer_env, "PYTHONPATH": str(ROOT), **bot.env}
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--json", "--db", bot.db], stdin=terminal,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=Path(ROOT), text=True)
        os.write(controller, lines.encode() + b"\x04")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return json_messages(out)
