"""Files from strangers and other tools, through the real ``plnbot`` CLI: wrong shapes are
read as far as they make sense, ids are strict, sizes are bounded, and anything refused
is one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session, create_engine, select

from bot.adapters.x_archive import MAX_MEMBER_BYTES
from bot.app import open_database
from storage.models import Contact, Handle
from tests.conftest import make_settings
from tests.support.cli import run_plnbot


@pytest.fixture
def db_url(db_url: str) -> str:
    """An up-to-date empty database, so "nothing was stored" can be looked at."""
    open_database(make_settings(), db_url).dispose()
    return db_url


def handles(db: str) -> list[tuple[str, str]]:
    engine = create_engine(db)
    try:
        with Session(engine) as session:
            return [(h.platform, h.external_id) for h in session.exec(select(Handle))]
    finally:
        engine.dispose()


def refused(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_wrong_json_shapes_in_profiles_are_read_as_far_as_they_make_sense(tmp_path, db_url):
    """A number for a name, an object for a bio, numbers for link entities, a string
    for Mastodon fields, a lone surrogate: tracebacks with exit 0 before; now everyone
    is stored."""
    x = [{"id": "1", "name": 5, "description": {"a": 1}, "username": "one"},
         {"id": 2, "name": "Two", "entities": {"description": {"urls": [1, 2]}, "url": 7}},
         {"id": "3", "name": "Three \ud800", "description": "Teacher https://[fe80::1"}]
    mastodon = [{"id": "4", "acct": "four@a.social", "fields": "not a list", "note": ["x"]},
                {"id": "5", "acct": "five@a.social", "display_name": "Five\x00", "fields": [1]}]
    for platform, people in (("x", x), ("mastodon", mastodon)):
        path = tmp_path / f"{platform}.json"
        path.write_text(json.dumps(people), encoding="utf-8")
        result = run_plnbot("sync", "--platform", platform, "--snapshot", str(path),
                            "--db", db_url)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(handles(db_url)) == [("mastodon", "4"), ("mastodon", "5"), ("x", "1"),
                                       ("x", "2"), ("x", "3")]


def test_snapshot_ids_are_strings_or_whole_numbers(tmp_path, db_url):
    for bad in ("true", "1.5", '{"a": 1}'):
        path = tmp_path / "snapshot.json"
        path.write_text(f'[{{"id": "1"}}, {{"id": {bad}}}]', encoding="utf-8")
        result = run_plnbot("sync", "--platform", "x", "--snapshot", str(path), "--db", db_url)
        refused(result, "is not an id")
    assert handles(db_url) == []


def archive_with(path: Path, account_id: str) -> Path:
    entries = [{"follower": {"accountId": "12"}}, {"follower": {"accountId": account_id}}]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/follower.js",
                         "window.YTD.follower.part0 = " + json.dumps(entries))
    return path


def test_archive_ids_are_ascii_digits(tmp_path, db_url):
    """ "12\\n" and full-width "１２" made contacts that duplicated "12"."""
    for odd in ("12\n", "１２"):
        result = run_plnbot("import", "x-archive", str(archive_with(tmp_path / "a.zip", odd)),
                            "--db", db_url)
        refused(result, "ASCII digits")
    assert handles(db_url) == []


def test_a_zip_that_inflates_past_the_cap_is_refused_before_it_fills_memory(tmp_path, db_url):
    path = tmp_path / "bomb.zip"
    chunk = b" " * 2**20
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("data/follower.js", "w", force_zip64=True) as member:
            member.write(b"window.YTD.follower.part0 = [")
            for _ in range(MAX_MEMBER_BYTES // len(chunk) + 1):
                member.write(chunk)
            member.write(b"]")
    assert path.stat().st_size < 5 * 2**20
    result = run_plnbot("import", "x-archive", str(path), "--db", db_url)
    refused(result, f"larger than {MAX_MEMBER_BYTES // 2**20} MB uncompressed")
    assert handles(db_url) == []


def test_an_over_long_csv_field_is_one_line(tmp_path, db_url):
    path = tmp_path / "following_accounts.csv"
    path.write_text('Account address\n"' + "a" * 200_000 + '"\n', encoding="utf-8")
    result = run_plnbot("import", "mastodon-csv", str(path), "--db", db_url)
    refused(result, "following_accounts.csv")


def test_csv_export_cells_never_run_as_formulas(tmp_path, db_url):
    """Names and bios come from strangers; a spreadsheet runs =, +, -, @ cells."""
    people = [{"id": "1", "name": '=HYPERLINK("https://evil.example","x")'},
              {"id": "2", "name": "+1 Caller", "description": "@SUM(A1)"},
              {"id": "3", "name": "-2 Minus"}]
    path = tmp_path / "x.json"
    path.write_text(json.dumps(people), encoding="utf-8")
    assert run_plnbot("sync", "--platform", "x", "--snapshot", str(path),
                      "--db", db_url).returncode == 0
    out = tmp_path / "export.zip"
    assert run_plnbot("export", "--format", "csv", "--out", str(out), "--db", db_url
                      ).returncode == 0
    with zipfile.ZipFile(out) as archive:
        contacts = archive.read("contacts.csv").decode()
    assert "'=HYPERLINK" in contacts and "'+1 Caller" in contacts and "'-2 Minus" in contacts
    for line in contacts.splitlines()[1:]:
        for cell in line.split(","):
            assert not cell.strip('"').startswith(("=", "+", "-", "@")), line
    engine = create_engine(db_url)
    with Session(engine) as session:  # what is stored stays as the person wrote it
        assert session.exec(select(Contact.name).where(Contact.name.startswith("="))).all()
    engine.dispose()
