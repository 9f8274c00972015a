"""``plnbot import json`` next to another owner: the whole file is checked before
anything is written, and nothing in it can reach the other owner's rows."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from tests.support.cli import run_plnbot

PEOPLE = [{"id": "901", "username": "ada", "name": "Ada Lovelace"},
          {"id": "902", "username": "bo", "name": "Bo Diaz"}]


@pytest.fixture
def exported(tmp_path, db_url) -> dict:
    """Owner A's network and A's own export, in a database B is about to import into."""
    snapshot = tmp_path / "x.json"
    snapshot.write_text(json.dumps(PEOPLE), encoding="utf-8")
    env = {"PLNBOT_OWNER": "discord:1"}
    assert run_plnbot("sync", "--platform", "x", "--snapshot", str(snapshot), "--db", db_url,
                      env=env).returncode == 0
    result = run_plnbot("export", "--db", db_url, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def import_as_b(tmp_path, db_url, data: dict):
    path = tmp_path / "import.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return run_plnbot("import", "json", str(path), "--db", db_url,
                      env={"PLNBOT_OWNER": "discord:2"})


def rows(db_url: str) -> dict[str, list]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        found = {name: conn.execute(text(f"SELECT * FROM {name} ORDER BY id")).all()
                 for name in ("contact", "handle", "connection", "account")}
    engine.dispose()
    return found


def refused(result, words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr


@pytest.mark.parametrize("reference", [0, -3, 1, 2])
def test_a_reference_outside_the_file_is_refused(tmp_path, db_url, exported, reference):
    """Ids are shifted past those in use, so a reference to 0, -3 or 1 used to land on
    owner A's own rows: B's `who`, `log` and `remind` then read and changed A's contact."""
    exported["contacts"] = exported["contacts"][1:]  # contact 1 is no longer in the file
    exported["handles"][0]["contact_id"] = reference if reference != 2 else 1
    before = rows(db_url)
    refused(import_as_b(tmp_path, db_url, exported), "handles[1].contact_id")
    assert rows(db_url) == before


@pytest.mark.parametrize(("where", "value", "words"), [
    (("owner", "quiet_start"), "99:99", "Quiet hours"),
    (("owner", "tone"), "shouty", "tone"),
    (("owner", "digest_weekday"), 9, "weekday"),
    (("connections", 0, "state"), "gone", "connections[1].state"),
    (("handles", 0, "platform"), "myspace", "handles[1].platform"),
    (("contacts", 0, "name"), "x" * 301, "the limit is 300"),
    (("contacts", 0, "id"), 2**70, "contacts[1].id"),
    (("contacts", 0, "bio"), "nul \x00 byte", "NUL"),
])
def test_values_the_commands_would_refuse_are_refused(tmp_path, db_url, exported, where,
                                                      value, words):
    target = exported
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    before = rows(db_url)
    refused(import_as_b(tmp_path, db_url, exported), words)
    assert rows(db_url) == before


def test_a_clean_export_imports_next_to_the_other_owner(tmp_path, db_url, exported):
    result = import_as_b(tmp_path, db_url, exported)
    assert result.returncode == 0, result.stderr
    engine = create_engine(db_url)
    with engine.connect() as conn:
        strays = conn.execute(text(
            "SELECT count(*) FROM handle h JOIN contact c ON c.id = h.contact_id "
            "WHERE c.owner_id != h.owner_id")).scalar()
    engine.dispose()
    assert strays == 0
    assert len(rows(db_url)["contact"]) == 4
