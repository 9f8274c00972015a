"""Every command against PostgreSQL via DATABASE_URL or --db, as a subprocess."""

import json

import pytest
from sqlmodel import Session, select

from storage.db import make_engine
from storage.models import OutboxMessage
from tests.support.cli import json_messages, run_plnbot
from tests.support.factories import x_user

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(tmp_path, pg_url):
    return {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path),
            "DATABASE_URL": pg_url}


def test_db_upgrade_reports_the_revision_without_the_password(env, pg_url):
    result = run_plnbot("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert "postgresql+psycopg://" in result.stdout and "revision 0" in result.stdout


def test_sync_then_console_on_postgresql(env, tmp_path):
    snapshot = tmp_path / "followers.json"
    snapshot.write_text(json.dumps({"data": [x_user("Amara Okafor", username="amara_teach"),
                                             x_user("Ravi Patel", username="mrpatel")]}))
    result = run_plnbot("sync", "--platform", "x", "--snapshot", str(snapshot), "--json",
                        env=env)
    assert result.returncode == 0, result.stderr
    [baseline] = json_messages(result.stdout)
    assert "baseline" in baseline["text"]
    result = run_plnbot("console", "--json", stdin="who @amara_teach\nnote ravi maths lead\n",
                        env=env)
    assert result.returncode == 0, result.stderr
    replies = json_messages(result.stdout)
    assert [m["kind"] for m in replies] == ["reply", "reply"]
    assert "Amara Okafor" in replies[0]["text"] and "Ravi Patel" in replies[1]["text"]


def test_db_option_overrides_database_url(env, pg_url, tmp_path):
    result = run_plnbot("console", "--json", "--db", pg_url, stdin="help\n",
                        env={**env, "DATABASE_URL": "sqlite:////proc/nope/x.db"})
    assert result.returncode == 0, result.stderr


def test_run_worker_once_delivers_every_owners_messages(env, pg_url):
    for owner in ("amara", "ravi"):
        result = run_plnbot("console", stdin="help\n", env={**env, "PLNBOT_OWNER": owner})
        assert result.returncode == 0, result.stderr
    engine = make_engine(pg_url)
    with Session(engine) as session:
        for row in session.exec(select(OutboxMessage)):
            row.status = "pending"  # as if the console had died before delivering
            session.add(row)
        session.commit()
    result = run_plnbot("run", "--worker", "--once", "--json", env=env)
    assert result.returncode == 0, result.stderr
    messages = json_messages(result.stdout)
    assert sorted(m["owner"] for m in messages) == ["amara", "ravi"]
    assert all(m["kind"] == "reply" and m["key"] for m in messages)
    with Session(engine) as session:
        assert {r.status for r in session.exec(select(OutboxMessage))} == {"sent"}
    engine.dispose()

