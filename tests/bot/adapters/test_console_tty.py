"""A calm console (issue 18, items 4 and 9), at a real terminal (a pty): a first run
greets the owner with the settings that matter, and a reminder that arrives while the
owner is typing prints above the prompt, with the half-typed line redrawn below it."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from tests.support.cli import ROOT, clean_environment

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


class Terminal:
    """``plnbot console`` on a pseudo-terminal: what a person at a terminal sees."""

    def __init__(self, tmp_path) -> None:
        env = clean_environment({"PLNBOT_SWEEP_SECONDS": "1", "TERM": "xterm",
                                 "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "120",
                                 "PLNBOT_DATA_DIR": str(tmp_path / "data")})
        main, child = pty.openpty()
        self.main = main
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "console", "--db",
             f"sqlite:///{tmp_path / 'tty.sqlite3'}"],
            stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT, close_fds=True)
        os.close(child)
        self.raw = ""

    def read_until(self, pattern: str, timeout: float = 60) -> str:
        """Everything shown so far (escape codes removed) once ``pattern`` appears."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} never appeared; saw {self.screen()!r}")
            ready, _, _ = select.select([self.main], [], [], left)
            if ready:
                try:
                    self.raw += os.read(self.main, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        return self.screen()

    def screen(self) -> str:
        return ANSI.sub("", self.raw)

    def type(self, text: str) -> None:
        os.write(self.main, text.encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.main)


def test_a_first_run_greets_and_a_reminder_prints_above_the_line_being_typed(tmp_path):
    terminal = Terminal(tmp_path)
    try:
        shown = terminal.read_until(r"you>")
        assert "Hello! I'm plnbot" in shown
        assert "settings tz Europe/London" in shown and "settings field" in shown
        assert "settings interests" in shown
        terminal.type("remind me in 2 seconds stretch\r")
        terminal.read_until(r"Reminder #\d+ set")
        terminal.type("who jan")  # typing, not yet sent, when the reminder comes
        terminal.read_until(r"\[Reminder\][\s\S]*stretch[\s\S]*you>\s*who jan")
        # the prompt line was wiped (carriage return / erase) before the reminder was
        # printed: it does not run on from the half-typed text
        assert re.search(r"(?:\r|\x1b\[[0-9;?]*[A-Za-z])\[Reminder\]", terminal.raw)
        terminal.type("\x15\x04")  # clear the line, then Ctrl-D ends the session
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()


def test_hi_and_unknown_words_get_help_not_a_bare_error(tmp_path):
    from tests.support.cli import json_messages, run_plnbot

    result = run_plnbot("console", "--json", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}",
                        stdin="hi\nthanks\nremmind me tomorrow x\n")
    hi, thanks, unknown = json_messages(result.stdout)
    assert hi["kind"] == "reply" and "settings tz" in hi["text"], hi
    assert "settings interests" in hi["text"] and "settings field" in hi["text"]
    assert thanks["kind"] == "reply" and "`help`" in thanks["text"]
    assert unknown["kind"] == "error" and "Did you mean `remind`" in unknown["text"]
    assert unknown["usage"] == "help [command]"
