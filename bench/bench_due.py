"""Work proportional to what is due: 100,000 owners on PostgreSQL, 1 % with work due.

1. Idle pass. Every owner's next due time is in the future and no message waits:
   ``Worker.claim_owners()`` (the query a worker runs between passes) must come back
   empty in well under 50 ms. Baseline, same run: a plain psycopg ``SELECT id FROM
   owner WHERE next_sweep_at <= now() LIMIT 20`` (indexed).
2. Due pass. 1,000 owners (1 %) are due: ``Worker.drain()`` claims them 20 at a time
   and runs each one's whole sweep (``Tick("sweep")``, which also records the owner's
   next due time). Reported: owners per second, and the claims alone against the plain
   indexed selection of the same owners (``SELECT … ORDER BY next_sweep_at LIMIT 20``,
   repeated until all are read). Before this change every owner was swept every
   ``PLNBOT_SWEEP_SECONDS``: 100,000 owners = 3,333 sweeps a second at 30 s.

Needs PostgreSQL: ``BENCH_DATABASE_URL`` or ``TEST_DATABASE_URL``.
``python -m bench.bench_due [--quick]``; writes bench/results/due.json.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import timedelta

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.bench_workers import NOW, NullSurface, scratch_database
from bench.common import parse_args, report
from bot.config import Settings
from bot.worker import Worker
from storage.db import make_engine, upgrade


def seed(engine, owners: int, due: int) -> None:
    """``owners`` owners, the first ``due`` of them due now, the rest in an hour. They
    enrolled a minute ago, so no weekly digest (and its chart, ~0.25 s of matplotlib,
    measured in bench_workers) is due: this measures the due-work machinery."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO owner (external_ref, name, tz, tone, signature, field, interests, bio,"
            " digest_weekday, digest_time, report_losses, created_at, next_sweep_at)"
            " SELECT 'owner-' || n, '', 'UTC', 'warm', '', 'education', '', '', 0, '09:00',"
            " 'digest', :created, CASE WHEN n <= :due THEN :now ELSE :later END"
            " FROM generate_series(1, :count) AS n"),
            {"created": NOW - timedelta(minutes=1), "now": NOW - timedelta(seconds=1),
             "later": NOW + timedelta(hours=1), "due": due, "count": owners})
        conn.execute(text("ANALYZE owner"))


def plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def time_idle(worker: Worker, dsn: str, rounds: int) -> dict:
    engine_ms, plain_ms = [], []
    with psycopg.connect(dsn) as conn:
        for _ in range(rounds):
            start = time.perf_counter()
            assert worker.claim_owners() == []
            engine_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            conn.execute("SELECT id FROM owner WHERE next_sweep_at <= %s LIMIT 20",
                         (NOW,)).fetchall()
            plain_ms.append((time.perf_counter() - start) * 1000)
    return {"idle_pass_ms": round(statistics.median(engine_ms), 2),
            "idle_plain_select_ms": round(statistics.median(plain_ms), 2),
            "idle_ratio": round(statistics.median(engine_ms) / statistics.median(plain_ms), 1)}


def time_plain_selection(dsn: str, due: int) -> float:
    """The same owners read 20 at a time through the index, without claiming them."""
    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        read = 0
        while read < due:
            rows = conn.execute(
                "SELECT id FROM owner WHERE next_sweep_at <= %s"
                " ORDER BY next_sweep_at, id OFFSET %s LIMIT 20", (NOW, read)).fetchall()
            conn.commit()
            read += len(rows)
            if not rows:
                break
    return time.perf_counter() - start


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    owners, due = (20_000, 200) if args.quick else (100_000, 1_000)
    with scratch_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        seed(engine, owners, due)
        settings = Settings(_env_file=None, PLNBOT_SWEEP_SECONDS=30)
        worker = Worker(settings=settings, engine=engine, surface=NullSurface(),
                        clock=lambda: NOW, worker="bench")
        claims: list[float] = []
        original = worker.claim_owners

        def timed_claim() -> list[int]:
            start = time.perf_counter()
            ids = original()
            claims.append(time.perf_counter() - start)
            return ids

        worker.claim_owners = timed_claim  # type: ignore[method-assign]
        start = time.perf_counter()
        served = asyncio.run(worker.drain())
        elapsed = time.perf_counter() - start
        assert served == due, (served, due)
        worker.claim_owners = original  # type: ignore[method-assign]
        figures = {"owners": owners, "due": due, **time_idle(worker, plain_dsn(url), 30)}
        plain = time_plain_selection(plain_dsn(url), due)
        figures.update({
            "due_pass_seconds": round(elapsed, 2),
            "due_owners_per_second": round(due / elapsed, 1),
            "claims_seconds": round(sum(claims), 3),
            "plain_selection_seconds": round(plain, 3),
            "claims_vs_plain_ratio": round(sum(claims) / plain, 1),
            "sweeps_per_second_before_at_30s": round(owners / 30, 1),
            "load_average_1min": round(os.getloadavg()[0], 1),
        })
        engine.dispose()
    report("due", figures)


if __name__ == "__main__":
    main()
