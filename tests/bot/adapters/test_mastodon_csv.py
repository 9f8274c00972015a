"""``plnbot import mastodon-csv``: both export formats, re-imports and broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, create_engine, func, select

from bot.adapters.mastodon_csv import ExportFileError, following_profiles, read_following
from bot.events import NetworkImported
from storage.models import Connection, Contact, Draft, Handle
from tests.support.cli import json_messages, run_plnbot
from tests.support.factories import arrival, mastodon_person

HEADER_FILE = (
    "Account address,Show boosts,Notify on new posts,Languages\n"
    "jane@school.social,true,false,\n"
    "tom@mathstodon.xyz,false,false,en\n"
    "ana@scholar.social,true,true,\"en,es\"\n"
)
OLD_FILE = "jane@school.social\n@tom@mathstodon.xyz\n\nana@scholar.social\n"


def write(tmp_path: Path, text: str, name: str = "following_accounts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(db_url: str, model, **where) -> int:
    engine = create_engine(db_url)
    with Session(engine) as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return session.exec(query).one()


def test_both_formats_read_the_same_addresses(tmp_path):
    expected = ["jane@school.social", "tom@mathstodon.xyz", "ana@scholar.social"]
    assert read_following(write(tmp_path, HEADER_FILE)) == expected
    assert read_following(write(tmp_path, OLD_FILE, "old.csv")) == expected
    assert read_following(write(tmp_path, "\ufeff" + HEADER_FILE, "bom.csv")) == expected


@pytest.mark.parametrize("text, problem", [
    ("Account address,Show boosts\njane@school.social,true\nnot an address,true\n",
     "line 3: 'not an address' is not an account address"),
    ("#domain,#severity\nspam.example,suspend\n", "line 1: '#domain'"),
    ("Account address,Show boosts\n", "no account addresses"),
])
def test_broken_files_name_the_file_and_line(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ExportFileError, match=problem) as error:
        read_following(path)
    assert str(path) in str(error.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ExportFileError, match="no such file"):
        read_following(tmp_path / "nope.csv")
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"jane@school.social\n\xff\xfe\x00")
    with pytest.raises(ExportFileError, match="line 2: not UTF-8"):
        read_following(binary)


def test_cli_imports_quietly_and_a_reimport_changes_nothing(tmp_path, db_url):
    path = write(tmp_path, HEADER_FILE)
    first = run_plnbot("import", "mastodon-csv", str(path), "--json", "--db", db_url)
    assert first.returncode == 0, first.stderr
    [reply] = json_messages(first.stdout)
    assert reply["kind"] == "reply" and reply["new_connections"] == 3
    assert "0 followers and 3 accounts you follow" in reply["text"]
    again = run_plnbot("import", "mastodon-csv", str(path), "--json", "--db", db_url)
    [reply] = json_messages(again.stdout)
    assert (reply["new_connections"], reply["already_known"]) == (0, 3)
    assert count(db_url, Contact) == 3
    assert count(db_url, Connection, kind="following", state="active") == 3
    assert count(db_url, Draft) == 0


def test_cli_reads_the_old_format(tmp_path, db_url):
    result = run_plnbot("import", "mastodon-csv", str(write(tmp_path, OLD_FILE)), "--db", db_url)
    assert result.returncode == 0, result.stderr
    assert "Imported your Mastodon following_accounts.csv" in result.stdout
    assert "3 accounts you follow" in result.stdout


def test_cli_broken_file_is_one_line_exit_2_and_stores_nothing(tmp_path, db_url):
    path = write(tmp_path, OLD_FILE + "oops\n")
    result = run_plnbot("import", "mastodon-csv", str(path), "--db", db_url)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"plnbot: {path}: line 5: 'oops' is not an account address like user@example.social "
        "(is this Mastodon's following_accounts.csv?)"]
    assert "Traceback" not in result.stderr


async def test_a_live_follower_takes_over_the_imported_contact(app, tmp_path):
    following = following_profiles(write(tmp_path, "Jane@School.social\n"))
    await app.handle(NetworkImported(owner_ref="local", platform="mastodon", followers=[],
                                     following=following))
    app.surface.pop()
    person = mastodon_person("Jane Doe", acct="jane@school.social", id="4242")
    await app.handle(arrival(person))
    [message] = app.surface.pop()
    assert message.kind == "new_connection"
    with Session(app.engine) as session:
        [handle] = session.exec(select(Handle)).all()
        contact = session.get(Contact, handle.contact_id)
    assert handle.external_id == "4242" and contact.name == "Jane Doe"


async def test_a_reimport_after_a_live_sync_finds_the_person_by_address(app, tmp_path):
    await app.handle(arrival(mastodon_person("Jane Doe", acct="jane@school.social", id="77")))
    following = following_profiles(write(tmp_path, "jane@school.social\n"))
    await app.handle(NetworkImported(owner_ref="local", platform="mastodon", followers=[],
                                     following=following))
    with Session(app.engine) as session:
        assert len(session.exec(select(Contact)).all()) == 1
        kinds = sorted(session.exec(select(Connection.kind)).all())
    assert kinds == ["follower", "following"]
