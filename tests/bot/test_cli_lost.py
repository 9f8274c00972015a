"""Lost connections end to end: ``plnbot sync --json`` over a sequence of snapshot files,
then ``lost`` in the console, as a user (or a cron script) runs them."""

import json

import pytest

from tests.support.cli import json_messages, run_plnbot
from tests.support.factories import mastodon_account, x_user

X_PEOPLE = [x_user(f"Teacher {i}", id=str(5000 + i)) for i in range(40)]
MASTODON_PEOPLE = [mastodon_account(f"Toot {i}", id=str(9000 + i)) for i in range(10)]


@pytest.fixture
def env(tmp_path):
    return {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}


@pytest.fixture
def sync(tmp_path, env):
    db = f"sqlite:///{tmp_path / 'lost.sqlite3'}"
    counter = iter(range(1000))

    def run(platform, people, *extra):
        path = tmp_path / f"snapshot{next(counter)}.json"
        document = {"data": people} if platform == "x" else people
        path.write_text(json.dumps(document))
        result = run_plnbot("sync", "--platform", platform, "--snapshot", str(path),
                            "--db", db, "--json", *extra, env=env)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return json_messages(result.stdout)

    run.db = db
    return run


def test_unfollows_refollows_mass_drops_partial_lists_and_two_platforms(sync, env):
    [baseline] = sync("x", X_PEOPLE)
    assert baseline["kind"] == "reply" and "40 existing connections" in baseline["text"]
    [baseline] = sync("mastodon", MASTODON_PEOPLE)
    assert "10 existing connections" in baseline["text"]

    # a single unfollow on X: quietly kept for the digest
    [reply] = sync("x", X_PEOPLE[1:])
    assert reply["kind"] == "reply" and "1 connection ended" in reply["text"]

    # a partial list never removes anyone (here: most of the X followers missing)
    [reply] = sync("x", X_PEOPLE[30:], "--partial")
    assert reply["kind"] == "reply" and "no changes" in reply["text"]

    # the unfollower comes back: a welcome back, not a new connection
    [back] = sync("x", X_PEOPLE)
    assert back["kind"] == "welcome_back" and back["contact"]["name"] == "Teacher 0"

    # 25 of 40 vanish at once: one message, nobody listed as leaving
    [vanished] = sync("x", X_PEOPLE[25:])
    assert vanished["kind"] == "connections_vanished" and vanished["count"] == 25
    assert vanished["platform"] == "x" and "I'll re-check" in vanished["text"]

    # meanwhile on Mastodon: an ordinary loss, tracked apart
    [reply] = sync("mastodon", MASTODON_PEOPLE[1:])
    assert reply["text"].startswith("Mastodon: 1 connection ended")

    # a partial return, then the rest
    [partly] = sync("x", X_PEOPLE[10:])
    assert partly["kind"] == "connections_returned"
    assert (partly["returned"], partly["still_missing"]) == (15, 10)
    assert sorted(c["name"] for c in partly["contacts"]) == sorted(
        f"Teacher {i}" for i in range(10))
    [done] = sync("x", X_PEOPLE)
    assert done["kind"] == "connections_returned" and done["still_missing"] == 0
    assert done["contacts"] == []

    listing = run_plnbot("console", "--json", "--db", sync.db, stdin="lost\nlost 0\n", env=env)
    assert listing.returncode == 0, listing.stderr
    [lost, error] = json_messages(listing.stdout)
    lines = lost["text"].splitlines()
    assert "25 vanished at once on X" in lines[1] and "25 back, 0 still missing" in lines[1]
    assert "lost · Toot 0" in lines[2]
    assert "back (gap 0 days) · Teacher 0" in lines[3]
    assert "lost · Teacher 0" in lines[4]
    assert error["kind"] == "error" and error["usage"] == "lost [days]"

