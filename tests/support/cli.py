"""Run ``plnbot`` as a subprocess, the way a user (or a script) does."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_environment(env: dict | None = None) -> dict[str, str]:
    """The caller's environment without the developer's plnbot configuration."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PLNBOT_", "DATABASE_URL", "X_", "MASTODON_",
                                        "BLUESKY_", "DISCORD_"))}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    return environment


class LivePlnbot:
    """``plnbot …`` running with its stdin held open, as a person at a console: write
    lines, wait for what it prints, close stdin (EOF) when done."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            env=clean_environment(env), cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, kind: str, timeout: float) -> tuple[dict, list[dict]]:
        """The first JSON message of ``kind`` within ``timeout`` seconds, and every
        message seen until then; AssertionError if it never comes."""
        seen: list[dict] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.lines.get(timeout=left))
            except queue.Empty:
                break
            seen.append(message)
            if message.get("kind") == kind:
                return message, seen
        raise AssertionError(f"no {kind!r} within {timeout} s; saw {seen}")

    def close(self, timeout: float = 60) -> tuple[int, str]:
        """EOF on stdin; the exit code and stderr."""
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=timeout)
        return code, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_plnbot(*args: str, stdin: str = "", env: dict | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    environment = clean_environment(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
        env=environment, cwd=cwd or ROOT, timeout=timeout,
    )


def json_messages(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
