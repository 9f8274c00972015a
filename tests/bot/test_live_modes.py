"""Live in every mode (issue 18, item 5): while ``plnbot console`` or ``plnbot demo``
is open, a reminder that comes due is delivered then — not at the next start."""

import pytest

from tests.support.cli import LivePlnbot

LIVE = {"PLNBOT_SWEEP_SECONDS": "1"}


@pytest.mark.parametrize("mode", [["console", "--json"], ["demo", "--fast", "--json"]])
def test_a_reminder_due_while_the_session_is_open_arrives_before_eof(tmp_path, mode):
    plnbot = LivePlnbot(*mode, "--db", f"sqlite:///{tmp_path / 'live.sqlite3'}",
                        env=LIVE | {"PLNBOT_DATA_DIR": str(tmp_path / "data")})
    try:
        plnbot.write("remind me in 3 seconds check the slides")
        set_reply, _ = plnbot.wait_for("reply", timeout=60)
        assert "check the slides" in set_reply["text"], set_reply
        reminder, _ = plnbot.wait_for("reminder", timeout=30)
        assert "check the slides" in reminder["text"]
        assert reminder["reminder_ids"] == [set_reply["reminder_id"]]
        code, stderr = plnbot.close()
    finally:
        plnbot.kill()
    assert code == 0, stderr
