"""The owner's contact commands and export/import through the real command line."""

import json
import zipfile

import pytest

from tests.support.cli import json_messages, run_plnbot

FOLLOWERS = [
    {"id": "1", "username": "amara", "acct": "amara@mastodon.education",
     "display_name": "Amara Okafor", "note": "Year 5 teacher in Leeds #edtech"},
    {"id": "2", "username": "zoe", "acct": "zoe@scholar.social",
     "display_name": "Zoë Ångström", "note": "Physics teacher, Malmö"},
    {"id": "3", "username": "asmith", "acct": "asmith@mastodon.social",
     "display_name": "Amara Smith", "note": "School librarian"},
]


@pytest.fixture
def setup(tmp_path):
    env = {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    db = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    snapshot = tmp_path / "followers.json"
    snapshot.write_text(json.dumps(FOLLOWERS))
    result = run_plnbot("sync", "--platform", "mastodon", "--snapshot", str(snapshot),
                        "--db", db, "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return env, db, tmp_path


def console(setup, *lines: str) -> list[dict]:
    env, db, tmp_path = setup
    result = run_plnbot("console", "--json", "--db", db, stdin="\n".join(lines) + "\n",
                        env=env, cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return json_messages(result.stdout)


def test_every_contact_command_through_the_console(setup):
    replies = console(
        setup,
        "help", "help link", "who zoe", "who amara", "find teacher",
        "log @amara talked about #outdoors learning", "note ANGSTROM loves #physics",
        "find #physics", "link amara@mastodon.education @asmith", "yes", "who #3",
        "settings tz Europe/London tone brief", "settings", "settings tz Mars/Base",
        "export", "who", "log nobody hello", "",
    )
    kinds = [m["kind"] for m in replies]
    assert kinds == ["reply"] * 3 + ["error"] + ["reply"] * 9 + ["error", "reply"] + [
        "error"] * 2
    assert "People:" in replies[0]["text"] and replies[1]["usage"] == "link <person> <person>"
    assert replies[2]["contact"]["name"] == "Zoë Ångström"
    assert "2 people match" in replies[3]["text"] and replies[3]["usage"] == "who <person>"
    assert [c["name"] for c in replies[4]["contacts"]] == ["Zoë Ångström", "Amara Okafor"]
    assert replies[5]["tags"] == ["outdoors"]
    assert [c["name"] for c in replies[7]["contacts"]] == ["Zoë Ångström"]
    assert replies[9]["merged_id"] == 3 and replies[10]["text"].startswith("Amara Okafor (#1)")
    assert replies[12]["settings"]["tz"] == "Europe/London"
    assert "Area/City" in replies[13]["text"]
    exported = json.loads(open(replies[14]["path"], encoding="utf-8").read())
    assert len(exported["contacts"]) == 3 and len(exported["interactions"]) == 2
    assert "find" in replies[16]["text"]


def test_export_json_and_csv_and_import_round_trip(setup):
    env, db, tmp_path = setup
    console(setup, "log zoe talked about #physics", "settings signature — Sam")
    first = run_plnbot("export", "--db", db, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["owner"]["signature"] == "— Sam" and len(data["contacts"]) == 3

    result = run_plnbot("export", "--format", "csv", "--out", str(tmp_path / "out.zip"),
                        "--db", db, env=env, cwd=tmp_path)
    assert result.returncode == 0 and "exported 3 contacts" in result.stderr
    assert "contacts.csv" in zipfile.ZipFile(tmp_path / "out.zip").namelist()

    (tmp_path / "export.json").write_text(first.stdout, encoding="utf-8")
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = run_plnbot("import", "json", str(tmp_path / "export.json"), "--db", fresh,
                        env=env, cwd=tmp_path)
    assert result.returncode == 0 and "imported" in result.stderr, result.stderr
    again = run_plnbot("export", "--out", str(tmp_path / "again.json"), "--db", fresh,
                       env=env, cwd=tmp_path)
    assert again.returncode == 0
    second = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    assert {**second, "exported_at": None} == {**data, "exported_at": None}

    repeat = run_plnbot("import", "json", str(tmp_path / "export.json"), "--db", fresh,
                        env=env, cwd=tmp_path)
    assert repeat.returncode == 2 and "already has contacts" in repeat.stderr
    assert repeat.stderr.count("\n") == 1 and "Traceback" not in repeat.stderr


def test_import_of_a_bad_file_is_one_clear_line(tmp_path):
    """(Unreadable contents are covered in-process: tests/storage/test_transfer.py.)"""
    path = tmp_path / "missing.json"
    result = run_plnbot("import", "json", str(path), "--db", f"sqlite:///{tmp_path / 'x.db'}",
                        env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_contact_book_through_the_console_across_restarts(setup):
    """Names with spaces, link asked in one run and confirmed in the next, a numbered
    answer, undo, and the new views: `plnbot console --json` end to end."""
    first = console(setup, "add Jo Whitfield jo@art.social — met at the gallery",
                    "log Jo Whitfield met at the gallery late opening",
                    "link Amara Okafor Amara Smith")
    assert [m["kind"] for m in first] == ["reply"] * 3
    assert "\u201cmet at the gallery late opening\u201d" in first[1]["text"]
    assert "Reply `yes`" in first[2]["text"]
    second = console(setup, "yes", "who amara", "history jo whitfield", "undo", "undo",
                     "people never", "tag zoe #physics", "people #physics", "draft 1")
    assert [m["kind"] for m in second] == ["reply"] * 8 + ["error"]
    assert "#3 now means #1" in second[0]["text"]
    assert second[1]["text"].startswith("Amara Okafor (#1)")  # one person now: no list
    assert "1. " in second[2]["text"] and "met at the gallery late opening" in second[2]["text"]
    assert second[3]["undone"] == "link #1 #3"
    assert second[4]["undone"] == "log Jo Whitfield met at the gallery late opening"
    assert second[5]["total"] == 4
    assert [c["name"] for c in second[7]["contacts"]] == ["Zoë Ångström"]
    assert second[8]["usage"] == "draft <id>"  # a baseline makes no drafts
    third = console(setup, "who amara", "2")
    assert third[0]["kind"] == "error" and "Reply with its number" in third[0]["text"]
    assert third[1]["kind"] == "reply" and third[1]["contact"]["name"] in (
        "Amara Okafor", "Amara Smith")
