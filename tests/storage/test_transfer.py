"""Export everything; a JSON export imported into an empty database exports the same."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from sqlmodel import Session

from storage import search, transfer
from storage.models import Owner, Reminder
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.network import make_app, seed_network


@pytest.fixture(params=["sqlite", "postgresql"])
def url_pair(request, tmp_path):
    """Two empty databases of the same engine: the source and the import target."""
    if request.param == "sqlite":
        return [f"sqlite:///{tmp_path / name}" for name in ("a.sqlite3", "b.sqlite3")]
    first = request.getfixturevalue("pg_url")
    return [first, first.rsplit("/", 1)[0] + "/" + _second_pg(request)]


def _second_pg(request) -> str:
    import uuid

    from sqlalchemy import create_engine, text

    url = request.getfixturevalue("pg_url")
    name = f"plnbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    return name


async def rich_network(url, clock=None):
    app = await seed_network(make_app(make_settings(), url, clock))
    await say_one(app, "log @MrPatel_Maths talked about retrieval practice #mathchat")
    await say_one(app, "note zoe lovely chat about Malmö ✨")
    await say_one(app, "link #1 #4")
    await say_one(app, "yes")
    await say_one(app, "settings tz Europe/London quiet 22:00-07:00 signature — Sam")
    with Session(app.engine) as session:
        session.add(Reminder(owner_id=app.owner_id, contact_id=2, text="slides",
                             due_at=app.clock() + timedelta(days=3), created_at=app.clock()))
        session.commit()
    return app


def exported(app) -> dict:
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        data = transfer.export_data(session, owner=owner, now=app.clock())
    return json.loads(transfer.to_json(data))


async def test_json_round_trip_gives_the_same_export(url_pair):
    source = await rich_network(url_pair[0])
    first = exported(source)
    assert transfer.counts(first) == {
        "accounts": 3, "contacts": 6, "handles": 6, "connections": 6, "interactions": 2,
        "reminders": 1, "drafts": 6, "cadences": 0, "goals": 0}
    target = make_app(make_settings(), url_pair[1], source.clock)
    with Session(target.engine) as session:
        owner = session.get(Owner, target.owner_id)
        transfer.import_data(session, owner=owner, data=transfer.load_json(json.dumps(first)))
        session.commit()
        assert search.search(session.connection(), owner_id=owner.id, query="retrieval")
    assert exported(target) == first
    reply = await say_one(target, "who #4")  # merged ids and the index survive
    assert reply.text.startswith("Amara Okafor (#1)") and "X: @asmith" in reply.text
    assert (await say_one(target, "log ravi new rows get fresh ids")).kind == "reply"
    source.engine.dispose()
    target.engine.dispose()


async def test_importing_twice_is_refused_and_changes_nothing(db_url):
    app = await rich_network(db_url)
    data = exported(app)
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        with pytest.raises(transfer.TransferError, match="already has contacts"):
            transfer.import_data(session, owner=owner, data=data)
    assert exported(app) == data


@pytest.mark.parametrize("raw, message", [
    ("{", "not valid JSON"),
    ("[]", "not a plnbot export"),
    ('{"format": "plnbot-export", "version": 9}', "version 9"),
])
def test_unreadable_files_are_explained(raw, message):
    with pytest.raises(transfer.TransferError, match=message):
        transfer.load_json(raw)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["contacts"][0].pop("name"), r"contacts\[1\] has no 'name'"),
    (lambda d: d["contacts"][0].update(created_at="yesterday"), "not a valid date"),
    (lambda d: d["handles"][0].update(contact_id="one"), "should be int"),
    (lambda d: d["owner"].update(tz="Mars/Base"), "not a known time zone"),
    (lambda d: d.update(handles={}), "must be a list"),
])
async def test_broken_exports_import_nothing(db_url, tmp_path, change, message):
    data = exported(await rich_network(db_url))
    change(data)
    target = make_app(make_settings(), f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with Session(target.engine) as session:
        owner = session.get(Owner, target.owner_id)
        with pytest.raises(transfer.TransferError, match=message):
            transfer.import_data(session, owner=owner, data=data)
        session.rollback()
    assert transfer.counts(exported(target)) == dict.fromkeys(transfer.counts(data), 0)


async def test_csv_zip_holds_the_same_rows_as_json(db_url):
    data = exported(await rich_network(db_url))
    archive = zipfile.ZipFile(io.BytesIO(transfer.to_csv_zip(data)))
    assert sorted(archive.namelist()) == sorted(
        ["owner.csv"] + [f"{name}.csv" for name, _m, _r in transfer.TABLES])
    for name, _model, _refs in transfer.TABLES:
        rows = list(csv.DictReader(io.TextIOWrapper(archive.open(f"{name}.csv"), "utf-8")))
        assert [row["id"] for row in rows] == [str(r["id"]) for r in data[name]]
    owner_rows = list(csv.DictReader(io.TextIOWrapper(archive.open("owner.csv"), "utf-8")))
    assert owner_rows[0]["signature"] == "— Sam"


async def test_exports_hold_no_secrets(db_url):
    settings = make_settings(X_BEARER_TOKEN="secret-token-123", DISCORD_TOKEN="disc-456")
    app = await seed_network(make_app(settings, db_url))
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        text = transfer.to_json(transfer.export_data(session, owner=owner, now=app.clock()))
    assert "secret-token-123" not in text and "disc-456" not in text
    app.engine.dispose()
