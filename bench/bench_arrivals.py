"""New-connection throughput: arrivals → contact, handle, connection, event, draft, outbox.

Engine, two realistic paths:
  * live: one ``NewConnection`` event per arrival, each its own transaction and delivery
    (a stream or a poll handing people over one by one);
  * batch: one poll returning many new followers (``SnapshotReceived(complete=False)``),
    one transaction.
Baselines, same rows in the same run: plain sqlite3 inserts of the six rows per arrival,
committed per arrival (for *live*) and with ``executemany`` in one transaction (for *batch*).
Goal: ≥ 2,000 arrivals/s on SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

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


def people(count: int, offset: int = 0):
    return [
        x_profile({"id": str(10_000_000 + offset + i), "username": f"user{offset + i}",
                   "name": f"Person{offset + i} Example",
                   "description": BIOS[i % len(BIOS)].format(n=i % 6 + 1)})
        for i in range(count)
    ]


def make_app(folder: Path, name: str) -> App:
    settings = Settings(_env_file=None)
    engine = open_database(settings, f"sqlite:///{folder / name}")
    return App(settings=settings, engine=engine, surface=NullSurface())


async def engine_live(app: App, arrivals) -> None:
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


def plain(path: Path, arrivals, *, per_arrival_commit: bool) -> None:
    connection = sqlite3.connect(path)
    connection.execute("pragma journal_mode=wal")
    connection.execute("pragma synchronous=normal")
    connection.executescript(SCHEMA)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    for i, profile in enumerate(arrivals, 1):
        baseline_rows(connection, profile, i, now)
        if per_arrival_commit:
            connection.commit()
    connection.commit()
    connection.close()


def main() -> None:
    args = parse_args(__doc__)
    count = 2_000 if args.quick else 10_000
    arrivals = people(count)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        live_app = make_app(folder, "live.sqlite3")
        live_s, _ = timed(lambda: asyncio.run(engine_live(live_app, arrivals)))
        batch_app = make_app(folder, "batch.sqlite3")
        batch_s, _ = timed(lambda: asyncio.run(engine_batch(batch_app, arrivals)))
        plain_live_s, _ = timed(lambda: plain(folder / "p1.db", arrivals, per_arrival_commit=True))
        plain_batch_s, _ = timed(
            lambda: plain(folder / "p2.db", arrivals, per_arrival_commit=False))
    report("arrivals", {
        "arrivals": count,
        "live_engine_per_s": round(count / live_s),
        "live_baseline_per_s": round(count / plain_live_s),
        "live_ratio": round(live_s / plain_live_s, 2),
        "batch_engine_per_s": round(count / batch_s),
        "batch_baseline_per_s": round(count / plain_batch_s),
        "batch_ratio": round(batch_s / plain_batch_s, 2),
        "goal": ">= 2000 arrivals/s",
    })


if __name__ == "__main__":
    main()
