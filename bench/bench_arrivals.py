"""New-connection throughput: arrivals → contact, handle, connection, event, draft, outbox.

Engine, every arrival through ``App.handle``, three ways:
  * stream: 10,000 ``NewConnection`` events handed over the way Discord's gateway hands
    over member joins, each to its own task, with nobody waiting for the one before;
    the app writes together whatever has queued (``bot.arrivals``). Every arrival is
    recorded, drafted and told about. Reported: written (committed, the outbox row
    included: the goal) and end to end (also delivered, to a null chat surface);
  * one at a time: each arrival awaited before the next is handed over (a quiet day:
    the cost of a lone arrival);
  * poll: one poll returning 10,000 new followers (``SnapshotReceived(complete=False)``),
    one transaction; the first 50 drafted, the rest recorded and summarised.
People: four in five have a real name; one in five only a handle. ``nameless``: the
same stream where nobody has a first name, so most welcomes come out alike and are
re-rendered up to seven times to stay unlike the newest thousand (the worst case).
Baselines, same rows in the same run: plain sqlite3 inserts of the six rows per
arrival, committed per arrival, per 500 (as the stream's batches) and all at once.
Goal: ≥ 2,000 arrivals/s on SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.bench_commands import FIRST, surname
from bench.common import parse_args, report, timed
from bot.adapters.translate import x_profile
from bot.app import App, open_database
from bot.config import Settings
from bot.events import NewConnection, SnapshotReceived

BIOS = [
    "Year {n} teacher at Riverside Primary. #edtech #primaryrocks",
    "Head of Science at Kingsbridge Academy. Retrieval practice nerd. #scichat",
    "Paediatric nurse. Health education in schools.",
    "Software engineer, open source, Python. #python",
    "Museum educator and former art teacher.",
]


class NullSurface:
    async def send(self, message) -> None:
        return None


def name(i: int, *, named: bool) -> str:
    """ "Amara Okafpat" for four in five (``named``), a bare handle for the fifth;
    "Person7 Example" (no first name to greet) for everyone when not ``named``."""
    if not named:
        return f"Person{i} Example"
    return f"user{i}" if i % 5 == 4 else f"{FIRST[i % 50]} {surname(i // 50)}"


def people(count: int, offset: int = 0, *, named: bool = True):
    return [
        x_profile({"id": str(10_000_000 + offset + i), "username": f"user{offset + i}",
                   "name": name(offset + i, named=named),
                   "description": BIOS[i % len(BIOS)].format(n=i % 6 + 1)})
        for i in range(count)
    ]


class Stopwatch:
    """Wraps a coroutine function and adds up the time spent in it."""

    def __init__(self, func) -> None:
        self.func, self.seconds = func, 0.0

    async def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return await self.func(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def make_app(folder: Path, name: str) -> App:
    settings = Settings(_env_file=None)
    engine = open_database(settings, f"sqlite:///{folder / name}")
    return App(settings=settings, engine=engine, surface=NullSurface())


async def engine_stream(app: App, arrivals) -> float:
    """Every arrival handed over at once, each its own task; returns the seconds spent
    delivering (the rest of the time went into writing)."""
    await app.handle(SnapshotReceived(owner_ref="local", platform="x", profiles=[]))
    app.outbox.deliver = delivery = Stopwatch(app.outbox.deliver)
    await asyncio.gather(*(app.handle(NewConnection(owner_ref="local", profile=profile))
                           for profile in arrivals))
    return delivery.seconds


async def engine_one_at_a_time(app: App, arrivals) -> None:
    await app.handle(SnapshotReceived(owner_ref="local", platform="x", profiles=[]))
    for profile in arrivals:
        await app.handle(NewConnection(owner_ref="local", profile=profile))


async def engine_batch(app: App, arrivals) -> None:
    await app.handle(SnapshotReceived(owner_ref="local", platform="x", profiles=[]))
    await app.handle(SnapshotReceived(owner_ref="local", platform="x", profiles=arrivals,
                                      complete=False))


SCHEMA = """
create table contact(id integer primary key, name text, bio text, created_at text);
create table handle(id integer primary key, contact_id int, platform text, external_id text,
                    handle text, unique(platform, external_id));
create table connection(id integer primary key, handle_id int, kind text, since text);
create table event(id integer primary key, connection_id int, kind text, at text);
create table draft(id integer primary key, contact_id int, text text, created_at text);
create table outbox(id integer primary key, key text unique, kind text, text text);
"""


def baseline_rows(connection: sqlite3.Connection, profile, i: int, now: str) -> None:
    connection.execute("insert into contact values (?,?,?,?)", (i, profile.name, profile.bio, now))
    connection.execute("insert into handle values (?,?,?,?,?)",
                       (i, i, "x", profile.external_id, profile.handle))
    connection.execute("insert into connection values (?,?,?,?)", (i, i, "follower", now))
    connection.execute("insert into event values (?,?,?,?)", (i, i, "gained", now))
    connection.execute("insert into draft values (?,?,?,?)", (i, i, f"Hi {profile.name}", now))
    connection.execute("insert into outbox values (?,?,?,?)",
                       (i, f"new:{i}", "new_connection", profile.bio))


def plain(path: Path, arrivals, *, commit_every: int | None) -> None:
    connection = sqlite3.connect(path)
    connection.execute("pragma journal_mode=wal")
    connection.execute("pragma synchronous=normal")
    connection.executescript(SCHEMA)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    for i, profile in enumerate(arrivals, 1):
        baseline_rows(connection, profile, i, now)
        if commit_every and i % commit_every == 0:
            connection.commit()
    connection.commit()
    connection.close()


def stream_figures(folder: Path, name: str, arrivals) -> dict:
    app = make_app(folder, f"{name}.sqlite3")
    seconds, delivering = timed(lambda: asyncio.run(engine_stream(app, arrivals)))
    app.engine.dispose()
    return {"written_per_s": round(len(arrivals) / (seconds - delivering)),
            "end_to_end_per_s": round(len(arrivals) / seconds)}


def main() -> None:
    args = parse_args(__doc__)
    count = 2_000 if args.quick else 10_000
    lone = 300 if args.quick else 1_000
    arrivals = people(count)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stream = stream_figures(folder, "stream", arrivals)
        nameless = stream_figures(folder, "nameless", people(count, named=False))
        lone_app = make_app(folder, "lone.sqlite3")
        lone_s, _ = timed(lambda: asyncio.run(engine_one_at_a_time(lone_app, arrivals[:lone])))
        batch_app = make_app(folder, "batch.sqlite3")
        batch_s, _ = timed(lambda: asyncio.run(engine_batch(batch_app, arrivals)))
        plain_each_s, _ = timed(lambda: plain(folder / "p1.db", arrivals, commit_every=1))
        plain_500_s, _ = timed(lambda: plain(folder / "p2.db", arrivals, commit_every=500))
        plain_once_s, _ = timed(lambda: plain(folder / "p3.db", arrivals, commit_every=None))
    plain_500 = count / plain_500_s
    report("arrivals", {
        "arrivals": count,
        "stream_written_per_s": stream["written_per_s"],
        "stream_end_to_end_per_s": stream["end_to_end_per_s"],
        "stream_baseline_per_s": round(plain_500),
        "stream_ratio": round(plain_500 / stream["written_per_s"], 1),
        "nameless_written_per_s": nameless["written_per_s"],
        "nameless_end_to_end_per_s": nameless["end_to_end_per_s"],
        "one_at_a_time_per_s": round(lone / lone_s),
        "one_at_a_time_ms": round(lone_s / lone * 1000, 2),
        "one_at_a_time_baseline_per_s": round(count / plain_each_s),
        "poll_engine_per_s": round(count / batch_s),
        "poll_baseline_per_s": round(count / plain_once_s),
        "poll_ratio": round(batch_s / plain_once_s, 2),
        "goal": ">= 2000 arrivals/s",
        "goal_met": stream["written_per_s"] >= 2000,
    })


if __name__ == "__main__":
    main()
