"""The command line end to end, as a subprocess."""

import json

import pytest

from tests.conftest import RECORDED
from tests.support.cli import json_messages, run_plnbot


@pytest.fixture
def env(tmp_path):
    return {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}


def test_version():
    result = run_plnbot("--version")
    assert result.returncode == 0 and "0.1.0" in result.stdout


def test_demo_fast_json_end_to_end(env, tmp_path):
    script = "help\nwho amara\nlog amara talked about outdoor learning #outdoors\n" \
             "note ravi runs #mathchat on Tuesdays\ndrafts\nskip 1\nwho nobody\n"
    result = run_plnbot("demo", "--fast", "--json", stdin=script, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    messages = json_messages(result.stdout)
    arrivals = [m for m in messages if m["kind"] == "new_connection"]
    assert len(arrivals) >= 8
    assert len({m["draft"] for m in arrivals}) == len(arrivals)
    assert all(m["contact"]["handle"] and m["contact"]["name"] for m in arrivals)
    replies = messages[len(arrivals):]
    assert [m["kind"] for m in replies] == ["reply"] * 6 + ["error"]
    assert "Amara Okafor" in replies[1]["text"]
    assert "outdoor learning" in replies[2]["text"] or "saved" in replies[2]["text"]
    assert "demo.sqlite3" in result.stderr


def test_console_reads_until_eof(env, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    result = run_plnbot("console", "--json", "--db", db, stdin="help\nwho x\n", env=env)
    assert result.returncode == 0, result.stderr
    assert [m["kind"] for m in json_messages(result.stdout)] == ["reply", "error"]


def test_db_upgrade(env, tmp_path):
    db = f"sqlite:///{tmp_path / 'u.sqlite3'}"
    result = run_plnbot("db", "upgrade", "--db", db, env=env)
    assert result.returncode == 0, result.stderr
    assert "revision" in result.stdout


@pytest.mark.parametrize("db", ["nonsense://", "not a url at all", "sqlite:////proc/nope/x.db",
                                "postgresql+psycopg://nobody@127.0.0.1:1/none"])
def test_a_broken_db_url_is_one_line_and_exit_2(env, db):
    result = run_plnbot("console", "--db", db, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_bad_configuration_is_one_line_and_exit_2(env):
    result = run_plnbot("console", env={**env, "PLNBOT_TIMEZONE": "Mars/Olympus"})
    assert result.returncode == 2
    assert "PLNBOT_TIMEZONE" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["{not json", '{"unexpected": 1}', "[1, 2]"])
def test_an_unreadable_snapshot_is_one_line_and_exit_2(env, tmp_path, content):
    path = tmp_path / "snap.json"
    path.write_text(content)
    db = f"sqlite:///{tmp_path / 's.sqlite3'}"
    result = run_plnbot("sync", "--platform", "x", "--snapshot", str(path), "--db", db, env=env)
    assert result.returncode == 2 and "snap.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_sync_missing_file(env, tmp_path):
    result = run_plnbot("sync", "--platform", "x", "--snapshot", str(tmp_path / "no.json"),
                        env=env)
    assert result.returncode == 2 and "no such file" in result.stderr


def test_sync_x_then_mastodon_snapshots(env, tmp_path):
    import yaml

    db = f"sqlite:///{tmp_path / 'sync.sqlite3'}"
    cassette = yaml.safe_load(
        (RECORDED / "x" / "test_asyncclient_get_users_followers.yaml").read_text())
    pages = [json.loads(i["response"]["body"]["string"]) for i in cassette["interactions"]]
    first = tmp_path / "x1.json"
    first.write_text(json.dumps(pages))
    result = run_plnbot("sync", "--platform", "x", "--snapshot", str(first), "--db", db,
                        "--json", env=env)
    assert result.returncode == 0, result.stderr
    [baseline] = json_messages(result.stdout)
    assert baseline["kind"] == "reply" and "baseline" in baseline["text"]
    users = [u for page in pages for u in page["data"]]
    second = tmp_path / "x2.json"
    second.write_text(json.dumps({"data": users[1:] + [
        {"id": "99", "name": "Jane Doe", "username": "janedoe_teach",
         "description": "Year 2 teacher"}]}))
    result = run_plnbot("sync", "--platform", "x", "--snapshot", str(second), "--db", db,
                        "--json", env=env)
    messages = json_messages(result.stdout)
    assert [m["kind"] for m in messages] == ["new_connection", "reply"]
    assert "1 connection ended; kept for your digest" in messages[1]["text"]
