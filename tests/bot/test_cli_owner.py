"""Enrolling owners through the real command line: ``plnbot owner add`` / ``owner list``,
on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

import pytest
from sqlmodel import Session, select

from storage.db import make_engine
from storage.models import Owner
from tests.support.cli import run_plnbot

ADA = "discord:123456789012345678"
BEN = "discord:223456789012345678"


@pytest.fixture
def plnbot(tmp_path, database_url):
    env = {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}

    def run(*args: str):
        return run_plnbot(*args, "--db", database_url, env=env, cwd=tmp_path)

    run.url = database_url
    return run


def owners(url: str) -> list[Owner]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(Owner).order_by(Owner.id)))
    finally:
        engine.dispose()


def test_add_then_list_then_add_again(plnbot):
    result = plnbot("owner", "add", ADA, "--name", "Ada Lovelace", "--tz", "Europe/London")
    assert result.returncode == 0, result.stderr
    assert f"enrolled {ADA}" in result.stdout
    assert plnbot("owner", "add", BEN).returncode == 0

    again = plnbot("owner", "add", ADA, "--name", "Someone Else", "--tz", "Asia/Tokyo")
    assert again.returncode == 0, again.stderr
    assert "already enrolled" in again.stdout

    listed = plnbot("owner", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "owner\tname\ttz\tcontacts",
        f"{ADA}\tAda Lovelace\tEurope/London\t0",
        f"{BEN}\t-\tUTC\t0",
    ]
    assert [(o.external_ref, o.name, o.tz) for o in owners(plnbot.url)] == [
        (ADA, "Ada Lovelace", "Europe/London"), (BEN, "", "UTC")]


@pytest.mark.parametrize(("args", "complaint"), [
    (("discord:12ab",), "is not an owner address; use discord:<user id>"),
    (("discord:123",), "is not an owner address"),
    (("123456789012345678",), "is not an owner address"),
    (("x:123456789012345678",), "is not an owner address"),
    ((ADA, "--tz", "Mars/Olympus_Mons"), "unknown time zone 'Mars/Olympus_Mons'"),
    ((ADA, "--name", "x" * 201), "longer than 200 characters"),
])
def test_bad_input_is_one_line_and_exit_2_and_enrols_nobody(plnbot, args, complaint):
    result = plnbot("owner", "add", *args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert owners(plnbot.url) == []


def test_list_on_an_empty_database_says_how_to_enrol(plnbot):
    result = plnbot("owner", "list")
    assert result.returncode == 0 and result.stdout == ""
    assert "plnbot owner add discord:<user id>" in result.stderr
