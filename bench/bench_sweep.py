"""Due-work sweep with a million pending reminders, against a plain sqlite3 baseline.

What is measured, in one run on one SQLite file (WAL, as the bot uses it):

- ``sweep``: the whole ``App.sweep()`` — every Tick handler (reminders, follow-ups,
  cadences, mid-week nudges, digest, draft expiry, losses) plus outbox delivery to a
  null surface. The clock moves 30 s per sweep, as the scheduler's would, so each sweep
  finds the reminders that just came due (seeded one a minute) and delivers them.
- ``reminder_sweep_idle`` / ``reminder_sweep_delivering``: the same Tick dispatched to
  the due-work handler only (``handlers.reminders``: follow-ups + due reminders, one
  transaction, the message queued in the outbox), without the other issues' sweep
  handlers or delivery; "idle" steps the clock 1 s (almost never anything due),
  "delivering" 60 s (one reminder due and delivered every sweep).
- ``select``: the reminder handler's own selection (``handlers.reminders.due_reminders``,
  SQLModel) on the same data.
- ``baseline``: the same indexed query written by hand with the standard ``sqlite3``
  module — the floor any implementation could reach.

The query plan is printed to show the ``(status, due_at)`` index is used. Usage:
``python -m bench.bench_sweep [--quick]`` (``--quick``: 100,000 reminders).
Results go to ``bench/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.app import App, open_database  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.dispatcher import Dispatcher  # noqa: E402
from bot.events import Tick  # noqa: E402
from handlers.reminders import due_query, due_reminders  # noqa: E402

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SWEEPS = 200
STEP = timedelta(seconds=30)
BASELINE_SQL = ("SELECT id, owner_id, text, due_at FROM reminder "
                "WHERE status = 'open' AND due_at <= ? AND owner_id = ? "
                "ORDER BY due_at, id LIMIT 100")


class NullSurface:
    """Accepts every message; the bench measures the bot, not a terminal."""

    def __init__(self) -> None:
        self.delivered = 0

    async def send(self, message) -> None:
        self.delivered += 1


class StepClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def stamp(moment: datetime) -> str:
    """How SQLModel's UTCDateTime stores a moment in SQLite (naive UTC text)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def seed(path: Path, owner_id: int, count: int) -> None:
    """``count`` open reminders, one a minute from START, plus 5% done and cancelled ones."""
    rows = []
    for n in range(count):
        status = "open" if n % 20 else ("done" if n % 40 else "cancelled")
        due = START + timedelta(minutes=n + 1)
        rows.append((owner_id, "reminder", f"reminder {n}", stamp(due), status, stamp(START)))
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO reminder (owner_id, kind, text, due_at, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", rows)
        connection.execute("ANALYZE")


def query_plan(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[-1] for row in connection.execute(
            "EXPLAIN QUERY PLAN " + BASELINE_SQL, (stamp(START), 1))]


def orm_query_plan(app: App) -> list[str]:
    """The plan of the statement ``due_reminders`` really runs, as SQLAlchemy compiles it."""
    with app.engine.connect() as connection:
        compiled = due_query(owner_id=app.owner_id, now=START).compile(connection)
        values = [compiled.params[name] for name in compiled.positiontup]
        values = [stamp(v) if isinstance(v, datetime) else v for v in values]
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, tuple(values))
        return [row[-1] for row in rows]


def time_baseline(path: Path, owner_id: int, moments: list[datetime]) -> list[float]:
    timings = []
    with sqlite3.connect(path) as connection:
        for moment in moments:
            started = time.perf_counter()
            connection.execute(BASELINE_SQL, (stamp(moment), owner_id)).fetchall()
            timings.append(time.perf_counter() - started)
    return timings


def time_select(app: App, moments: list[datetime]) -> list[float]:
    timings = []
    with Session(app.engine) as session:
        for moment in moments:
            started = time.perf_counter()
            due_reminders(session, owner_id=app.owner_id, now=moment)
            timings.append(time.perf_counter() - started)
            session.rollback()
    return timings


async def time_reminder_sweeps(app: App, clock: StepClock, sweeps: int,
                               step: timedelta) -> list[float]:
    dispatcher = Dispatcher(engine=app.engine, settings=app.settings, clock=clock,
                            modules=("handlers.reminders",))
    timings = []
    for _ in range(sweeps):
        clock.now += step
        started = time.perf_counter()
        await dispatcher.dispatch(Tick(owner_ref=app.settings.owner_ref, name="sweep"))
        timings.append(time.perf_counter() - started)
    return timings


async def time_sweeps(app: App, clock: StepClock, sweeps: int) -> list[float]:
    timings = []
    for _ in range(sweeps):
        clock.now += STEP
        started = time.perf_counter()
        await app.sweep()
        timings.append(time.perf_counter() - started)
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {"median_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
            "max_ms": ordered[-1] * 1000}


def run(count: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="plnbot-bench-sweep-"))
    path = folder / "bench.sqlite3"
    settings = Settings(_env_file=None, PLNBOT_DATA_DIR=str(folder / "data"))
    clock = StepClock(START)
    surface = NullSurface()
    app = App(settings=settings, engine=open_database(settings, f"sqlite:///{path}"),
              surface=surface, clock=clock)
    started = time.perf_counter()
    seed(path, app.owner_id, count)
    seeded = time.perf_counter() - started
    asyncio.run(app.sweep())  # warm-up: first-run work (owner rows, job watermarks)
    moments = [START + STEP * n for n in range(1, SWEEPS + 1)]
    baseline = time_baseline(path, app.owner_id, moments)
    selection = time_select(app, moments)
    idle = asyncio.run(time_reminder_sweeps(app, clock, SWEEPS, timedelta(seconds=1)))
    delivering = asyncio.run(time_reminder_sweeps(app, clock, SWEEPS, timedelta(minutes=1)))
    sweeps = asyncio.run(time_sweeps(app, clock, SWEEPS))
    results = {
        "reminders": count, "sweeps": SWEEPS, "seed_seconds": seeded,
        "delivered_messages": surface.delivered,
        "query_plan": query_plan(path),
        "orm_query_plan": orm_query_plan(app),
        "baseline_sqlite3": summary(baseline),
        "select_due_reminders": summary(selection),
        "reminder_sweep_idle": summary(idle),
        "reminder_sweep_delivering": summary(delivering),
        "app_sweep": summary(sweeps),
    }
    base = results["baseline_sqlite3"]["median_ms"]
    results["ratio_select_to_baseline"] = results["select_due_reminders"]["median_ms"] / base
    results["ratio_idle_sweep_to_baseline"] = results["reminder_sweep_idle"]["median_ms"] / base
    results["ratio_sweep_to_baseline"] = results["app_sweep"]["median_ms"] / base
    return results


def report(results: dict) -> None:
    print(f"reminders: {results['reminders']:,} (seeded in {results['seed_seconds']:.1f} s), "
          f"{results['sweeps']} sweeps, {results['delivered_messages']} messages delivered")
    print("query plan (baseline):", "; ".join(results["query_plan"]))
    print("query plan (due_reminders):", "; ".join(results["orm_query_plan"]))
    for name in ("baseline_sqlite3", "select_due_reminders", "reminder_sweep_idle",
                 "reminder_sweep_delivering", "app_sweep"):
        figures = results[name]
        print(f"{name:26} median {figures['median_ms']:7.3f} ms   p95 {figures['p95_ms']:7.3f} ms"
              f"   max {figures['max_ms']:7.3f} ms")
    print(f"ratio to baseline: select {results['ratio_select_to_baseline']:.1f}x, "
          f"idle reminder sweep {results['ratio_idle_sweep_to_baseline']:.1f}x, "
          f"whole sweep {results['ratio_sweep_to_baseline']:.1f}x")
    for name in ("reminder_sweep_idle", "reminder_sweep_delivering"):
        met = "met" if results[name]["median_ms"] < 10 else "NOT met"
        print(f"goal {name} median < 10 ms: {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 reminders instead of 1M")
    args = parser.parse_args()
    results = run(100_000 if args.quick else 1_000_000)
    report(results)
    out = ROOT / "bench" / "results" / "sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
