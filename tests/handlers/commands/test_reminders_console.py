"""End to end through `plnbot console --json`: the reminder, cadence, goal and network
commands as a script or acceptance check would drive them."""

from pathlib import Path

from PIL import Image

from tests.support.cli import json_messages, run_plnbot

SCRIPT = """\
remind me tomorrow 9am call the district office
remind me every friday write the week's notes
remind me whenever
reminders
snooze 1 in 3 days
done 1
cancel 2
cancel 2
cadence #mathchat every 3 weeks
cadence nobody every week
due
goal conversations 3 per week
goal outside 1 per week
goal
stats
digest
"""


def test_console_json_commands(tmp_path: Path):
    result = run_plnbot("console", "--json", "--db", f"sqlite:///{tmp_path / 'db.sqlite3'}",
                        stdin=SCRIPT, env={"PLNBOT_DATA_DIR": str(tmp_path / "data"),
                                           "PLNBOT_TIMEZONE": "Europe/Paris"})
    assert result.returncode == 0, result.stderr
    messages = json_messages(result.stdout)
    kinds = [m["kind"] for m in messages]
    assert kinds == ["reply", "reply", "error", "reply", "reply", "reply", "reply", "error",
                     "reply", "error", "reply", "reply", "reply", "reply", "reply", "digest"]
    first, _, unreadable, listing, snoozed, done, cancelled, again = messages[:8]
    assert "(Europe/Paris)" in first["text"] and first["reminder_id"] == 1
    assert "in 3 days" in unreadable["text"] and unreadable["usage"].startswith("remind")
    assert [r["id"] for r in listing["reminders"]] == [1, 2]
    assert "Snoozed" in snoozed["text"] and done["text"] == (
        "Done: reminder #1, \u201ccall the district office\u201d.")
    assert "Cancelled reminder #2, \u201cwrite the week's notes\u201d" in cancelled["text"]
    assert "already cancelled" in again["text"]
    cadence, unknown, due, *_ = messages[8:]
    assert "#mathchat" in cadence["text"] and "don't know anyone" in unknown["text"]
    assert due["due"] == []
    goals = messages[13]["goals"]
    assert [g["kind"] for g in goals] == ["conversations", "outside"]
    assert messages[14]["stats"]["reminders"] == 0
    digest = messages[15]
    with Image.open(digest["image"]) as image:
        assert image.format == "PNG"
    assert Path(digest["image"]).is_relative_to(tmp_path / "data")
