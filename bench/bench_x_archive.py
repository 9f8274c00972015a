"""X archive import: a large archive read and stored in one transaction, then re-imported.

Engine: ``read_archive`` (zip) + the ``NetworkImported`` handler through ``App.handle``
(contacts, handles, connections and their events, in one transaction), then the same
archive again (which must change nothing). Baseline, same run: plain ``json.loads`` of
the same files plus plain sqlite3 ``executemany`` of the same number of rows into three
bare tables (contact, handle, connection) in one transaction.

``python -m bench.bench_x_archive [--quick]``; writes bench/results/x_archive.json.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
import zipfile
from pathlib import Path

from bench.common import parse_args, peak_rss_mb, report
from bot.adapters.x_archive import read_archive
from bot.app import App, open_database
from bot.config import Settings


class NullSurface:
    async def send(self, message) -> None:
        return None


def ytd(kind: str, ids: list[str]) -> str:
    entries = [{kind: {"accountId": i, "userLink": f"https://twitter.com/intent/user?user_id={i}"}}
               for i in ids]
    return f"window.YTD.{kind}.part0 = " + json.dumps(entries, indent=2, separators=(",", " : "))


def write_archive(path: Path, followers: int) -> tuple[list[str], list[str]]:
    follower_ids = [str(1_000_000_000 + n) for n in range(followers)]
    following_ids = follower_ids[: followers // 5] + [
        str(2_000_000_000 + n) for n in range(followers // 5)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data/follower.js", ytd("follower", follower_ids))
        archive.writestr("data/following.js", ytd("following", following_ids))
    return follower_ids, following_ids


def engine_import(folder: Path, archive_path: Path) -> tuple[float, float]:
    settings = Settings(_env_file=None)
    app = App(settings=settings, engine=open_database(settings, f"sqlite:///{folder / 'e.db'}"),
              surface=NullSurface())

    def once() -> float:
        start = time.perf_counter()
        asyncio.run(app.handle(read_archive(archive_path).event("local")))
        return time.perf_counter() - start

    return once(), once()


def baseline_import(folder: Path, archive_path: Path) -> float:
    start = time.perf_counter()
    with zipfile.ZipFile(archive_path) as archive:
        lists = [json.loads(archive.read(name).decode().split("=", 1)[1])
                 for name in ("data/follower.js", "data/following.js")]
    people = {next(iter(e.values()))["accountId"] for entries in lists for e in entries}
    connections = sum(len(entries) for entries in lists)
    db = sqlite3.connect(folder / "b.db")
    db.executescript("create table contact (id integer primary key, name text);"
                     "create table handle (id integer primary key, contact integer, ext text);"
                     "create table connection (id integer primary key, handle integer, kind text);")
    with db:
        db.executemany("insert into contact (name) values (?)", ((p,) for p in people))
        db.executemany("insert into handle (contact, ext) values (?, ?)",
                       ((n, p) for n, p in enumerate(people, 1)))
        db.executemany("insert into connection (handle, kind) values (?, ?)",
                       ((n % len(people) + 1, "f") for n in range(connections)))
    db.close()
    return time.perf_counter() - start


def main() -> None:
    followers = 5_000 if parse_args(__doc__.splitlines()[0]).quick else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        archive_path = folder / "archive.zip"
        follower_ids, following_ids = write_archive(archive_path, followers)
        baseline = baseline_import(folder, archive_path)
        first, again = engine_import(folder, archive_path)
    people = len(set(follower_ids) | set(following_ids))
    figures = {
        "followers": len(follower_ids), "following": len(following_ids), "people": people,
        "baseline_s": round(baseline, 3), "import_s": round(first, 3),
        "reimport_s": round(again, 3), "import_vs_baseline": round(first / baseline, 1),
        "people_per_s": round(people / first),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    report("x_archive", figures)


if __name__ == "__main__":
    main()
