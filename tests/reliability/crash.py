"""Helpers for crash-safety trials: kill -9 a plnbot subprocess at a seeded random moment."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import ROOT, json_messages


def plnbot_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PLNBOT_", "DATABASE_URL", "X_", "MASTODON_", "BLUESKY_",
                                "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), PLNBOT_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path),
               PLNBOT_LEASE_SECONDS=str(LEASE_SECONDS))
    return env


LEASE_SECONDS = 1


def restart_until_done(args: list[str], *, env: dict, stdout_path: Path, remaining,
                       max_restarts: int = 20) -> None:
    """Restart ``plnbot args`` until ``remaining()`` is 0.

    A killed process leaves its claims leased; they are taken over once the (short, in
    tests) lease has expired, as another worker or the next start would.
    """
    for _ in range(max_restarts):
        if not remaining():
            return
        assert run_and_kill(args, env=env, stdout_path=stdout_path, delay=None) == 0
        if remaining():
            time.sleep(LEASE_SECONDS + 0.1)
    assert remaining() == 0


def run_and_kill(args: list[str], *, env: dict, stdout_path: Path, delay: float | None,
                 stdin: str = "") -> int:
    """Run ``plnbot args``; SIGKILL it after ``delay`` seconds (None: let it finish)."""
    with open(stdout_path, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "bot", *args], stdout=out,
                                   stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
                                   env=env, cwd=ROOT)
        if stdin:
            process.stdin.write(stdin.encode())
        process.stdin.close()
        if delay is None:
            return process.wait(timeout=600)
        try:
            return process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            return process.wait()


def timed_run(args: list[str], *, env: dict, stdout_path: Path) -> float:
    start = time.perf_counter()
    code = run_and_kill(args, env=env, stdout_path=stdout_path, delay=None)
    assert code == 0
    return time.perf_counter() - start


def checkpoint_and_copy(source: Path, target: Path) -> None:
    """Copy a SQLite database safely (WAL folded into the main file first)."""
    with sqlite3.connect(source) as connection:
        connection.execute("pragma wal_checkpoint(truncate)")
    shutil.copy(source, target)


def integrity_ok(path: Path) -> bool:
    with sqlite3.connect(path) as connection:
        return connection.execute("pragma integrity_check").fetchone()[0] == "ok"


def seeded_delays(seed: int, trials: int, upper: float) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.05, upper) for _ in range(trials)]


def undelivered(path: Path) -> int:
    """Open reminders plus outbox messages not yet delivered."""
    with sqlite3.connect(path) as db:
        open_reminders = db.execute("select count(*) from reminder where status='open'")
        unsent = db.execute("select count(*) from outboxmessage where status != 'sent'")
        return open_reminders.fetchone()[0] + unsent.fetchone()[0]


def messages(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    complete = [line for line in text.splitlines() if line.endswith("}")]
    return json_messages("\n".join(complete))
