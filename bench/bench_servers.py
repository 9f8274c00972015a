"""Who connected this server? 100,000 owners with a Discord server each, on PostgreSQL.

A worker holding the gateway looks up, for every member join or leave, the owners who
connected that server (``queries.watchers(external_id=…)``, read afresh so a server
connected a moment ago counts at once), and on every (re)connect it reads the whole
mapping once (``queries.watchers()``) to compare each server's member list.

1. Per event: the lookup of one server among 100,000 (50 owners share one of them),
   median and p99 wall time, and CPU time, against two baselines in the same run: a
   plain psycopg ``SELECT owner_id FROM account WHERE platform = 'discord' AND
   external_id = %s`` on one open connection (the index
   ``ix_account_platform_external_id``), and the lookup every owner DM already costs
   (``queries.owner_id_of``: a pooled connection, pre-pinged, one indexed row).
2. Per (re)connect: the whole mapping (100,050 rows as ``Watcher``s), wall and CPU
   time and the memory it takes, against the plain psycopg read of the same rows.

Needs PostgreSQL: ``BENCH_DATABASE_URL`` or ``TEST_DATABASE_URL``.
``python -m bench.bench_servers [--quick]``; writes bench/results/servers.json.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import tracemalloc
from datetime import timedelta

import psycopg
from sqlalchemy import text

from bench.bench_due import plain_dsn
from bench.bench_workers import NOW, scratch_database
from bench.common import parse_args, percentiles, report
from bot import queries
from storage.db import make_engine, upgrade

SHARED = "9000000000000000000"  # the server 50 owners connected


def seed(engine, owners: int, sharing: int) -> None:
    """``owners`` owners with one connected server each (``1000…n``); ``sharing`` more
    who all connected ``SHARED``; half the servers have their first list read."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO owner (external_ref, name, tz, tone, signature, field, interests, bio,"
            " digest_weekday, digest_time, report_losses, created_at)"
            " SELECT 'discord:' || (100000000000000000 + n), '', 'UTC', 'warm', '',"
            " 'education', '', '', 0, '09:00', 'digest', :created"
            " FROM generate_series(1, :count) AS n"),
            {"created": NOW - timedelta(days=30), "count": owners + sharing})
        conn.execute(text(
            "INSERT INTO account (owner_id, platform, external_id, handle, baseline_done,"
            " connected_at, last_synced_at)"
            " SELECT id, 'discord', CASE WHEN id > :owners THEN :shared"
            " ELSE (1000000000000000000 + id)::text END, 'Server ' || id, id % 2 = 0,"
            " :connected, CASE WHEN id % 2 = 0 THEN :synced END FROM owner"),
            {"owners": owners, "shared": SHARED, "connected": NOW - timedelta(days=1),
             "synced": NOW})
        conn.execute(text("ANALYZE owner; ANALYZE account"))


def per_event(engine, dsn: str, owners: int, rounds: int) -> dict:
    servers = [str(1_000_000_000_000_000_000 + random.randint(1, owners))
               for _ in range(rounds)] + [SHARED] * (rounds // 10)
    ours, plain = [], []
    cpu_start = time.process_time()
    for server in servers:
        start = time.perf_counter()
        found = queries.watchers(engine, platform="discord", external_id=server)
        ours.append((time.perf_counter() - start) * 1000)
        assert found, server
    cpu_ours = time.process_time() - cpu_start
    dm, cpu_start = [], time.process_time()
    for index in range(len(servers)):
        start = time.perf_counter()
        queries.owner_id_of(engine, f"discord:{100_000_000_000_000_000 + 1 + index}")
        dm.append((time.perf_counter() - start) * 1000)
    cpu_dm = time.process_time() - cpu_start
    with psycopg.connect(dsn, autocommit=True) as conn:
        cpu_start = time.process_time()
        for server in servers:
            start = time.perf_counter()
            conn.execute("SELECT owner_id FROM account WHERE platform = 'discord' AND"
                         " external_id = %s AND connected_at IS NOT NULL",
                         (server,)).fetchall()
            plain.append((time.perf_counter() - start) * 1000)
        cpu_plain = time.process_time() - cpu_start
    return {
        "event_lookups": len(servers),
        "event_lookup": percentiles(ours),
        "event_plain_select": percentiles(plain),
        "event_owner_lookup_of_a_dm": percentiles(dm),
        "event_ratio_p50_vs_plain": round(statistics.median(ours) / statistics.median(plain), 1),
        "event_ratio_p50_vs_dm_lookup": round(statistics.median(ours) / statistics.median(dm), 2),
        "event_cpu_ms_each": round(cpu_ours / len(servers) * 1000, 3),
        "event_plain_cpu_ms_each": round(cpu_plain / len(servers) * 1000, 3),
        "event_dm_lookup_cpu_ms_each": round(cpu_dm / len(servers) * 1000, 3),
    }


def per_reconnect(engine, dsn: str) -> dict:
    tracemalloc.start()
    cpu_start, start = time.process_time(), time.perf_counter()
    everyone = queries.watchers(engine, platform="discord")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with psycopg.connect(dsn) as conn:
        cpu_start, start = time.process_time(), time.perf_counter()
        rows = conn.execute(
            "SELECT a.owner_id, o.external_ref, a.external_id, a.baseline_done,"
            " a.last_synced_at, a.connected_at, a.welcome_channel FROM account a"
            " JOIN owner o ON o.id = a.owner_id WHERE a.platform = 'discord'"
            " AND a.connected_at IS NOT NULL ORDER BY a.id").fetchall()
        plain_wall, plain_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert len(rows) == len(everyone)
    return {"reconnect_rows": len(everyone), "reconnect_seconds": round(wall, 3),
            "reconnect_cpu_seconds": round(cpu, 3),
            "reconnect_plain_seconds": round(plain_wall, 3),
            "reconnect_plain_cpu_seconds": round(plain_cpu, 3),
            "reconnect_ratio": round(wall / plain_wall, 1),
            "reconnect_peak_mb": round(peak / 2**20, 1)}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    owners, rounds = (20_000, 200) if args.quick else (100_000, 1_000)
    random.seed(7)
    with scratch_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        seed(engine, owners, 50)
        dsn = plain_dsn(url)
        figures = {"owners": owners + 50, **per_event(engine, dsn, owners, rounds),
                   **per_reconnect(engine, dsn),
                   "load_average_1min": round(os.getloadavg()[0], 1)}
        engine.dispose()
    report("servers", figures)


if __name__ == "__main__":
    main()
