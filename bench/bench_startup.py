"""Start-up time of ``plnbot console`` to its first prompt, against ``python -c pass``.

The console is run with an empty stdin, so it starts, upgrades/opens the database,
delivers what is due (the catch-up) and exits at EOF: the whole path before the first
prompt. Goal: < 1 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import parse_args, report

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=True,
                   cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    options = parse_args(__doc__)
    repeats = 3 if options.quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PLNBOT_DATA_DIR": tmp}
        db = f"sqlite:///{Path(tmp) / 'startup.sqlite3'}"
        console = [sys.executable, "-m", "bot", "console", "--db", db]
        first = run(console, env)  # creates the database and runs the migrations
        warm = [run(console, env) for _ in range(repeats)]
        python = [run([sys.executable, "-c", "pass"], env) for _ in range(repeats)]
    median_s = statistics.median(warm)
    baseline_s = statistics.median(python)
    report("startup", {
        "console_first_run_s": round(first, 3),
        "console_median_s": round(median_s, 3),
        "python_baseline_s": round(baseline_s, 3),
        "ratio": round(median_s / baseline_s, 1),
        "goal": "< 1 s",
    })


if __name__ == "__main__":
    main()
