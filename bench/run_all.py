"""Run every bench/bench_*.py in turn (``make bench``; ``--quick`` for ``make bench-quick``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    quick = ["--quick"] if "--quick" in sys.argv[1:] else []
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        module = f"bench.{script.stem}"
        print(f"\n>>> python -m {module} {' '.join(quick)}", flush=True)
        result = subprocess.run([sys.executable, "-m", module, *quick], cwd=HERE.parent)
        failures += result.returncode != 0
    print(f"\n{failures} benchmark(s) failed" if failures else "\nall benchmarks ran")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
