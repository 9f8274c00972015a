"""The tests run ``plnbot`` commands forked from a process that already imported it
(``tests/support/forkserver.py``): a command run that way must behave exactly as in a
fresh interpreter, or every CLI test would prove something about the double only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.cli import ROOT, clean_environment, fork_server, run_plnbot


def fresh(*args: str, stdin: str = "", env: dict | None = None, cwd=None):
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin,
                          capture_output=True, text=True, env=clean_environment(env),
                          cwd=cwd or ROOT, timeout=120)


@pytest.fixture(autouse=True)
def _forked() -> None:
    if fork_server() is None:
        pytest.skip("the fork server is off (PLNBOT_REAL_SUBPROCESS=1) or could not start")


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("nonsense",),
                                  ("import", "x-archive", "/nonexistent.zip"),
                                  ("owner", "add", "not-an-address")])
def test_output_and_exit_code_are_a_fresh_interpreters(tmp_path, args):
    env = {"PLNBOT_DATA_DIR": str(tmp_path / "data")}
    forked, real = run_plnbot(*args, env=env), fresh(*args, env=env)
    assert (forked.returncode, forked.stdout, forked.stderr) == \
        (real.returncode, real.stdout, real.stderr)


def test_each_command_reads_its_own_environment_stdin_and_folder(tmp_path):
    """Settings come from the command's environment, not the server's; the working
    folder is the command's (a relative --db lands there); stdin is read to its end."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a", "b"):
        result = run_plnbot("console", "--json", "--db", "sqlite:///plnbot.sqlite3",
                            stdin="note Ada met at the conference\nhelp\n",
                            env={"PLNBOT_OWNER": f"discord:{name}",
                                 "PLNBOT_DATA_DIR": str(tmp_path / name / "data")},
                            cwd=tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name / "plnbot.sqlite3").exists()
    assert "PLNBOT_OWNER" not in os.environ


def test_a_command_that_outlives_its_timeout_is_killed(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_plnbot("console", "--json", stdin="", timeout=0.01,
                   env={"PLNBOT_DATA_DIR": str(tmp_path / "data")})
