"""Importing an X data archive: the real file format, zip and folder, and broken ones."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from bot.adapters.translate import x_profile
from bot.adapters.x_archive import ArchiveError, read_archive
from bot.events import SnapshotReceived
from storage.models import Account, Connection, ConnectionEvent, Contact, Draft, Handle
from tests.support.chat import say_one
from tests.support.cli import json_messages, run_plnbot

OWNER_ID = "1072250532645998596"
FOLLOWERS = [str(1500000000000000000 + n) for n in range(7)]
FOLLOWING = [FOLLOWERS[0], FOLLOWERS[1], "90854461", "3013164348"]


def ytd(kind: str, part: int, ids: list[str], host: str = "twitter.com") -> str:
    """A file exactly as X writes it (its odd ``" : "`` spacing included)."""
    entries = [
        {kind: {"accountId": i, "userLink": f"https://{host}/intent/user?user_id={i}"}}
        for i in ids
    ]
    body = json.dumps(entries, indent=2, separators=(",", " : "))
    return f"window.YTD.{kind}.part{part} = {body}"


def account_js(account_id: str = OWNER_ID, username: str = "TweepyDev") -> str:
    body = json.dumps([{"account": {
        "email": "owner@example.org", "createdVia": "web", "username": username,
        "accountId": account_id, "createdAt": "2018-12-10T21:41:05.000Z",
        "accountDisplayName": "Tweepy Testing",
    }}], indent=2, separators=(",", " : "))
    return f"window.YTD.account.part0 = {body}"


def archive_files(**overrides: str) -> dict[str, str]:
    files = {
        "data/follower.js": ytd("follower", 0, FOLLOWERS[:4]),
        "data/follower-part1.js": ytd("follower", 1, FOLLOWERS[4:], host="x.com"),
        "data/following.js": ytd("following", 0, FOLLOWING, host="x.com"),
        "data/account.js": account_js(),
        "data/tweets.js": "window.YTD.tweets.part0 = []",
        "Your archive.html": "<html></html>",
    }
    files.update(overrides)
    return {name: text for name, text in files.items() if text is not None}


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def write_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def counts(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {model.__name__: session.exec(select(func.count()).select_from(model)).one()
                for model in (Contact, Handle, Connection, ConnectionEvent, Draft)}


def test_zip_and_folder_read_the_same(tmp_path):
    files = archive_files()
    from_zip = read_archive(write_zip(tmp_path / "twitter-2026.zip", files))
    from_folder = read_archive(write_folder(tmp_path / "unpacked", files))
    for archive in (from_zip, from_folder):
        assert [p.external_id for p in archive.followers] == FOLLOWERS
        assert [p.external_id for p in archive.following] == FOLLOWING
        assert (archive.account_id, archive.username) == (OWNER_ID, "TweepyDev")


def test_a_rezipped_folder_and_an_id_only_in_the_link_are_understood(tmp_path):
    only_link = ('window.YTD.follower.part0 = [ { "follower" : { "userLink" : '
                 '"https://x.com/intent/user?user_id=42" } } ]')
    files = {f"twitter-archive/{name}": text
             for name, text in archive_files(**{"data/follower.js": only_link}).items()}
    archive = read_archive(write_zip(tmp_path / "rezipped.zip", files))
    assert [p.external_id for p in archive.followers] == ["42", *FOLLOWERS[4:]]


async def test_import_is_a_quiet_baseline_with_mutuals(app, surface, tmp_path):
    archive = read_archive(write_folder(tmp_path, archive_files()))
    await app.handle(archive.event("local"))
    [reply] = surface.pop()
    assert reply.kind == "reply"
    assert "7 followers and 4 accounts you follow (2 mutual)" in reply.text
    assert reply.fields["new_contacts"] == 9 and reply.fields["new_connections"] == 11
    assert counts(app.engine)["Draft"] == 0
    with Session(app.engine) as session:
        account = session.exec(select(Account)).one()
        assert (account.external_id, account.handle, account.baseline_done) == (
            OWNER_ID, "TweepyDev", True)
    who = await say_one(app, f"who X user {FOLLOWERS[0]}")
    assert "X: follows you since" in who.text and "you follow them since" in who.text
    assert "(mutual)" in who.text
    who = await say_one(app, "who X user 90854461")
    assert "X: you follow them" in who.text and "mutual" not in who.text


async def test_a_lone_surrogate_in_a_user_link_is_cleaned_not_fatal(app, surface, tmp_path):
    """Found by the fuzz suite: ``"userLink": "\\ud88d"`` (half a UTF-16 pair, which JSON
    allows and no database stores) failed the whole import. The entry is cleaned and
    everyone in the archive is stored."""
    follower = (f'window.YTD.follower.part0 = [{{"follower": {{"accountId": "{FOLLOWERS[0]}",'
                f' "userLink": "\\ud88d"}}}}]')
    archive = read_archive(write_folder(tmp_path, archive_files(**{
        "data/follower.js": follower, "data/follower-part1.js": None})))
    await app.handle(archive.event("local"))
    [reply] = surface.pop()
    assert reply.kind == "reply" and "1 follower" in reply.text, reply.text
    with Session(app.engine) as session:
        handle = session.exec(select(Handle).where(Handle.external_id == FOLLOWERS[0])).one()
        assert "\ud88d" not in (handle.profile_json or "")


async def test_reimporting_the_same_archive_changes_nothing(app, surface, tmp_path):
    archive = read_archive(write_zip(tmp_path / "a.zip", archive_files()))
    await app.handle(archive.event("local"))
    before = counts(app.engine)
    surface.pop()
    await app.handle(read_archive(tmp_path / "a.zip").event("local"))
    [reply] = surface.pop()
    assert "already known, so nothing changed" in reply.text
    assert counts(app.engine) == before


async def test_a_later_sync_names_archive_people_without_drafting(app, surface, tmp_path):
    await app.handle(read_archive(write_folder(tmp_path, archive_files())).event("local"))
    surface.pop()
    named = x_profile({"id": FOLLOWERS[0], "name": "Jane Doe", "username": "janedoe"})
    await app.handle(SnapshotReceived(owner_ref="local", platform="x", profiles=[named],
                                      complete=False))
    with Session(app.engine) as session:
        handle = session.exec(select(Handle).where(Handle.external_id == FOLLOWERS[0])).one()
        assert (handle.handle, session.get(Contact, handle.contact_id).name) == (
            "janedoe", "Jane Doe")
    assert counts(app.engine)["Draft"] == 0


@pytest.mark.parametrize(("files", "problem"), [
    ({"data/follower-part1.js": ytd("follower", 1, ["1"])[:-3]}, "follower-part1.js: broken JSON"),
    ({"data/following.js": "var x = []"}, 'does not start with "window.YTD.following.part0 = "'),
    ({"data/follower.js": 'window.YTD.follower.part0 = [{"follower": {"accountId": "x1"}}]'},
     "entry 0 has no numeric accountId"),
    ({"data/follower.js": "window.YTD.follower.part0 = {}"}, "expected a list"),
])
def test_broken_archives_name_the_file_and_the_problem(tmp_path, files, problem):
    with pytest.raises(ArchiveError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        read_archive(write_zip(tmp_path / "broken.zip", archive_files(**files)))


def test_something_that_is_not_an_archive(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ArchiveError, match="not a zip file"):
        read_archive(tmp_path / "notes.txt")
    with pytest.raises(ArchiveError, match="no data/follower.js or data/following.js"):
        read_archive(write_folder(tmp_path / "empty", {"data/tweets.js": "[]"}))
    with pytest.raises(ArchiveError, match="no such file"):
        read_archive(tmp_path / "missing.zip")


def test_cli_imports_then_refuses_a_broken_archive_without_half_importing(tmp_path, db_url):
    good = write_zip(tmp_path / "good.zip", archive_files())
    result = run_plnbot("import", "x-archive", str(good), "--json", "--db", db_url)
    assert result.returncode == 0, result.stderr
    [reply] = json_messages(result.stdout)
    assert reply["kind"] == "reply" and reply["followers"] == 7 and reply["mutuals"] == 2

    broken = write_zip(tmp_path / "broken.zip", archive_files(**{
        "data/follower.js": ytd("follower", 0, ["11", "12"]),
        "data/following.js": "window.YTD.following.part0 = [ {",
    }))
    result = run_plnbot("import", "x-archive", str(broken), "--db", db_url)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "broken.zip: data/following.js: broken JSON" in line
    from sqlalchemy import create_engine
    engine = create_engine(db_url)
    with Session(engine) as session:
        ids = set(session.exec(select(Handle.external_id)))
    assert not ids & {"11", "12"}


def test_cli_refuses_the_archive_of_another_account(tmp_path, db_url):
    first = write_folder(tmp_path / "mine", archive_files())
    assert run_plnbot("import", "x-archive", str(first), "--db", db_url).returncode == 0
    other = write_folder(tmp_path / "other", archive_files(
        **{"data/account.js": account_js("999", "someoneelse")}))
    result = run_plnbot("import", "x-archive", str(other), "--db", db_url)
    assert result.returncode == 2
    assert "belongs to the X account @someoneelse (999)" in result.stderr
    assert "@TweepyDev" in result.stderr
