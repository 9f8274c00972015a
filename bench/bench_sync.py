"""How fast and lean a follower sync is, against a plain baseline in the same run.

For each size (10k, 100k, 1M followers; ``--quick``: 10k and 100k) the account is first
synced from an X-shaped snapshot file of real-looking profiles (a name and a one-word
bio each: the quiet baseline), timed against a plain first sync (``json.loads`` and
sqlite3 ``executemany`` of the same contact, handle, connection and event rows), and
the profiles it leaves unread are read as the bot does it in the background; then
a second file with 1%
of the followers gone and 1% new goes through the whole engine as ``plnbot sync`` runs
it: parse the file, diff, persist (connections, events, contacts, drafts), queue and
deliver the messages. The plain baseline does the same job with no engine at all:
``json.loads``, Python set difference against the stored ids, and sqlite3
``executemany`` of the same rows. Each measured step runs in its own subprocess so its
peak memory (``ru_maxrss``) is its own.

    python -m bench.bench_sync [--quick] [--first-only] [--skip-backlog] [--sizes N ...]

prints the figures and writes ``bench/results/sync.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "sync.json"
SIZES, QUICK_SIZES = (10_000, 100_000, 1_000_000), (10_000, 100_000)
CHURN = 0.01
PAGE = 1000  # X returns up to 1000 followers per page
GOAL_RATIO, GOAL_MB = 3.0, 500
FIRST_GOAL_RATIO, FIRST_GOAL_SECONDS = 5.0, 30.0  # the first sync: 100k / 1M followers
# one-word bios as people write them: roles, subjects, hobbies (the baseline understands
# every one of them, so they must cost what a real bio costs)
BIO_WORDS = ("teacher", "reader", "maths", "runner", "librarian", "parent", "science",
             "edtech", "SENCo", "coffee", "historian", "gardener", "headteacher", "music",
             "coach", "governor")


# --- the data ------------------------------------------------------------------------


def x_user(number: int) -> dict:
    """An X API v2 user object with the default fields a followers page returns."""
    return {"id": str(1_400_000_000_000_000_000 + number), "name": f"Follower {number}",
            "username": f"follower_{number}",
            "description": BIO_WORDS[number * 7 % len(BIO_WORDS)]}


def write_pages(path: Path, numbers: list[int]) -> None:
    pages = [{"data": [x_user(n) for n in numbers[i:i + PAGE]],
              "meta": {"result_count": len(numbers[i:i + PAGE])}}
             for i in range(0, len(numbers), PAGE)]
    path.write_text(json.dumps(pages))


def make_files(folder: Path, size: int) -> dict:
    """before.json (everyone), after.json (1% gone, 1% new, newest first like the API)."""
    rng = random.Random(size)
    everyone = list(range(size))
    churn = int(size * CHURN)
    gone = set(rng.sample(everyone, churn))
    newcomers = list(range(size, size + churn))
    write_pages(folder / "before.json", everyone)
    write_pages(folder / "after.json", newcomers + [n for n in everyone if n not in gone])
    return {"size": size, "gone": churn, "new": churn}


# --- the engine (each phase in its own process) ------------------------------------


class CountingSurface:
    """The owner's chat surface: counts what would be shown."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}

    async def send(self, message) -> None:
        self.kinds[message.kind] = self.kinds.get(message.kind, 0) + 1


def engine_sync(folder: Path, name: str) -> dict:
    """One ``plnbot sync`` of ``name`` as the CLI runs it, timed from reading the file."""
    from bot.adapters.snapshot_file import load_snapshot_file
    from bot.app import App, open_database
    from bot.config import Settings
    from bot.events import SnapshotReceived

    settings = Settings(_env_file=None)
    engine = open_database(settings, f"sqlite:///{folder / 'engine.sqlite3'}")
    surface = CountingSurface()
    app = App(settings=settings, engine=engine, surface=surface,
              clock=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    started, cpu = time.perf_counter(), time.process_time()
    snapshot = load_snapshot_file("x", folder / name)
    asyncio.run(app.handle(SnapshotReceived(owner_ref=settings.owner_ref, platform="x",
                                            profiles=snapshot)))
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "messages": surface.kinds}


def engine_backlog(folder: Path) -> dict:
    """Reading what the first sync left unread (``handlers.backlog``), as the bot does
    after a sweep: a batch per transaction until none are left. Background work, timed
    on its own."""
    from sqlmodel import Session, select

    from bot.app import open_database
    from bot.config import Settings
    from handlers import backlog
    from storage.models import Owner

    engine = open_database(Settings(_env_file=None), f"sqlite:///{folder / 'engine.sqlite3'}")
    with Session(engine) as session:
        owner_id = session.exec(select(Owner.id)).one()
    started, cpu, people = time.perf_counter(), time.process_time(), 0
    while True:
        with Session(engine) as session:
            count = backlog.read(session, owner_id=owner_id)
            session.commit()
        if not count:
            break
        people += count
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "people": people}


# --- the plain baseline --------------------------------------------------------------


PLAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS person (id INTEGER PRIMARY KEY, external_id TEXT UNIQUE,
    name TEXT, handle TEXT, state TEXT, since TEXT, lost_at TEXT);
CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, person_id INTEGER, kind TEXT,
    at TEXT);
"""


def plain_sync(folder: Path, name: str) -> dict:
    """The same diff with nothing but json, sets and sqlite3 executemany."""
    db = sqlite3.connect(folder / "plain.sqlite3")
    db.executescript(PLAIN_SCHEMA)
    started = time.perf_counter()
    users = {u["id"]: u for page in json.loads((folder / name).read_text())
             for u in page["data"]}
    stored = dict(db.execute("SELECT external_id, id FROM person WHERE state = 'active'"))
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).isoformat()
    new = [users[i] for i in users.keys() - stored.keys()]
    gone = [stored[i] for i in stored.keys() - users.keys()]
    db.executemany("INSERT INTO person (external_id, name, handle, state, since) "
                   "VALUES (?, ?, ?, 'active', ?)",
                   [(u["id"], u["name"], u["username"], now) for u in new])
    db.executemany("UPDATE person SET state = 'lost', lost_at = ? WHERE id = ?",
                   [(now, i) for i in gone])
    added = dict(db.execute("SELECT external_id, id FROM person WHERE since = ? "
                            "AND lost_at IS NULL", (now,)))
    db.executemany("INSERT INTO event (person_id, kind, at) VALUES (?, ?, ?)",
                   [(added[u["id"]], "gained", now) for u in new]
                   + [(i, "lost", now) for i in gone])
    db.commit()
    return {"seconds": time.perf_counter() - started, "new": len(new), "gone": len(gone)}


PLAIN_FIRST_SCHEMA = """
CREATE TABLE contact (id INTEGER PRIMARY KEY, name TEXT, bio TEXT, how_met TEXT,
    created_at TEXT);
CREATE TABLE handle (id INTEGER PRIMARY KEY, contact_id INTEGER, platform TEXT,
    external_id TEXT, handle TEXT, display_handle TEXT, profile_json TEXT,
    profile_hash INTEGER, created_at TEXT, UNIQUE (platform, external_id));
CREATE TABLE connection (id INTEGER PRIMARY KEY, handle_id INTEGER, kind TEXT,
    state TEXT, since TEXT);
CREATE TABLE event (id INTEGER PRIMARY KEY, connection_id INTEGER, kind TEXT, at TEXT,
    detail TEXT);
"""


def plain_first(folder: Path) -> dict:
    """The first sync with nothing but json and sqlite3: the same four rows a person."""
    db = sqlite3.connect(folder / "plain-first.sqlite3")
    db.executescript(PLAIN_FIRST_SCHEMA)
    started, cpu = time.perf_counter(), time.process_time()
    users = [u for page in json.loads((folder / "before.json").read_text())
             for u in page["data"]]
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).isoformat()
    ids = range(1, len(users) + 1)
    db.executemany("INSERT INTO contact VALUES (?, ?, ?, 'followed you on X', ?)",
                   [(i, u["name"], u.get("description"), now)
                    for i, u in zip(ids, users, strict=True)])
    db.executemany("INSERT INTO handle VALUES (?, ?, 'x', ?, ?, ?, ?, 0, ?)",
                   [(i, i, u["id"], u["username"].lower(), u["username"], json.dumps(u), now)
                    for i, u in zip(ids, users, strict=True)])
    db.executemany("INSERT INTO connection VALUES (?, ?, 'follower', 'active', ?)",
                   [(i, i, now) for i in ids])
    db.executemany("INSERT INTO event VALUES (?, ?, 'gained', ?, 'quiet')",
                   [(i, i, now) for i in ids])
    db.commit()
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


def plain_setup(folder: Path) -> None:
    db = sqlite3.connect(folder / "plain.sqlite3")
    db.executescript(PLAIN_SCHEMA)
    users = [u for page in json.loads((folder / "before.json").read_text())
             for u in page["data"]]
    db.executemany("INSERT INTO person (external_id, name, handle, state, since) "
                   "VALUES (?, ?, ?, 'active', '2026-11-01')",
                   [(u["id"], u["name"], u["username"]) for u in users])
    db.commit()


# --- running the phases --------------------------------------------------------------


PHASES = {
    "engine-baseline": lambda folder: engine_sync(folder, "before.json"),
    "engine-backlog": engine_backlog,
    "engine-churn": lambda folder: engine_sync(folder, "after.json"),
    "plain-setup": lambda folder: plain_setup(folder) or {},
    "plain-churn": lambda folder: plain_sync(folder, "after.json"),
    "plain-first": plain_first,
}


def run_phase(phase: str, folder: Path) -> dict:
    """One phase in a fresh interpreter, with its peak memory."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_sync", "--phase", phase, "--dir", str(folder)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reset_peak_memory() -> None:
    """Linux keeps the peak RSS across fork and exec, so a phase started by a big parent
    would report the parent's peak: reset it (``clear_refs`` 5) where the kernel allows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_main(phase: str, folder: Path) -> None:
    reset_peak_memory()
    figures = PHASES[phase](folder)
    figures["peak_mb"] = peak_memory_mb()
    print(json.dumps(figures))


def measure(size: int, *, first_only: bool = False, skip_backlog: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="plnbot-bench-") as name:
        folder = Path(name)
        data = make_files(folder, size)
        first = run_phase("engine-baseline", folder)
        plain_first_sync = run_phase("plain-first", folder)
        read = ({"people": 0, "seconds": 0.0, "cpu_seconds": 0.0, "peak_mb": 0}
                if skip_backlog else run_phase("engine-backlog", folder))
        first_figures = {
            **data, "first_sync_seconds": round(first["seconds"], 2),
            "first_sync_peak_mb": round(first["peak_mb"]),
            "first_sync_baseline_seconds": round(plain_first_sync["seconds"], 3),
            "first_sync_baseline_peak_mb": round(plain_first_sync["peak_mb"]),
            "first_sync_ratio": round(first["seconds"] / plain_first_sync["seconds"], 2),
            # on a shared machine the processor time is the steadier comparison
            "first_sync_cpu_seconds": round(first["cpu_seconds"], 2),
            "first_sync_baseline_cpu_seconds": round(plain_first_sync["cpu_seconds"], 3),
            "first_sync_cpu_ratio": round(first["cpu_seconds"] / plain_first_sync["cpu_seconds"],
                                          2),
            # then, in the background: the profiles the first sync left unread
            "backlog_people": read["people"], "backlog_seconds": round(read["seconds"], 2),
            "backlog_cpu_seconds": round(read["cpu_seconds"], 2),
            "backlog_peak_mb": round(read["peak_mb"])}
        if first_only:
            return first_figures
        run_phase("plain-setup", folder)
        engine = run_phase("engine-churn", folder)
        plain = run_phase("plain-churn", folder)
    return {**first_figures,
            "engine_seconds": round(engine["seconds"], 3),
            "engine_peak_mb": round(engine["peak_mb"]),
            "engine_messages": engine["messages"],
            "baseline_seconds": round(plain["seconds"], 3),
            "baseline_peak_mb": round(plain["peak_mb"]),
            "ratio": round(engine["seconds"] / plain["seconds"], 2)}


def report_first(row: dict) -> None:
    goal = (row["first_sync_seconds"] < FIRST_GOAL_SECONDS if row["size"] >= 1_000_000
            else row["first_sync_ratio"] <= FIRST_GOAL_RATIO)
    verdict = "ok" if goal and row["first_sync_peak_mb"] < GOAL_MB else "MISS"
    print(f"{row['size']:>9,} followers, first sync (names and one-word bios): "
          f"{row['first_sync_seconds']:.2f}s / {row['first_sync_peak_mb']} MB, "
          f"baseline {row['first_sync_baseline_seconds']:.2f}s / "
          f"{row['first_sync_baseline_peak_mb']} MB, ratio {row['first_sync_ratio']:.2f}x "
          f"[{verdict}]; processor time {row['first_sync_cpu_seconds']:.2f}s against "
          f"{row['first_sync_baseline_cpu_seconds']:.2f}s, {row['first_sync_cpu_ratio']:.2f}x")
    if not row["backlog_people"]:
        return
    print(f"{'':>9}  then reading the {row['backlog_people']:,} profiles it left unread "
          f"(background): {row['backlog_seconds']:.2f}s / {row['backlog_peak_mb']} MB, "
          f"processor time {row['backlog_cpu_seconds']:.2f}s "
          f"({row['backlog_cpu_seconds'] / max(row['backlog_people'], 1) * 1e6:.0f} µs a person)")


def report(row: dict) -> None:
    report_first(row)
    if "engine_seconds" not in row:
        return
    verdict = "ok" if row["ratio"] <= GOAL_RATIO and row["engine_peak_mb"] < GOAL_MB else "MISS"
    print(f"{row['size']:>9,} followers, {row['gone']:,} gone + {row['new']:,} new: "
          f"engine {row['engine_seconds']:.2f}s / {row['engine_peak_mb']} MB, "
          f"baseline {row['baseline_seconds']:.2f}s / {row['baseline_peak_mb']} MB, "
          f"ratio {row['ratio']:.2f}x [{verdict}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    parser.add_argument("--first-only", action="store_true",
                        help="only the first sync (the quiet baseline) and its plain baseline")
    parser.add_argument("--skip-backlog", action="store_true",
                        help="leave out reading the profiles the first sync left unread "
                             "(background work: 1,000,000 take minutes)")
    parser.add_argument("--sizes", type=int, nargs="+", help="follower counts to measure")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase_main(args.phase, args.dir)
        return
    rows = []
    for size in args.sizes or (QUICK_SIZES if args.quick else SIZES):
        rows.append(measure(size, first_only=args.first_only,
                            skip_backlog=args.skip_backlog))
        report(rows[-1])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"goal": {"ratio": GOAL_RATIO, "peak_mb": GOAL_MB,
                                            "first_sync_ratio": FIRST_GOAL_RATIO,
                                            "first_sync_seconds_1m": FIRST_GOAL_SECONDS},
                                   "churn": CHURN, "sizes": rows}, indent=2))
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
