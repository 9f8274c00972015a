"""Run ``plnbot`` as a subprocess, the way a user (or a script) does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_plnbot(*args: str, stdin: str = "", env: dict | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PLNBOT_", "DATABASE_URL", "X_", "MASTODON_",
                                        "BLUESKY_", "DISCORD_"))}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
        env=environment, cwd=cwd or ROOT, timeout=timeout,
    )


def json_messages(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
