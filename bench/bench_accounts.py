"""10,000 accounts connected by chat, polled by two worker processes on PostgreSQL.

5,000 owners with a Mastodon and a Bluesky account each, as polling leaves them after
``connect …`` (credentials encrypted with PLNBOT_SECRET_KEY, the quiet baseline done, a
cursor, the follower count seen), every one due. Fake Mastodon and Bluesky servers for
the whole fleet (bench/fleet.py: the real API shapes, parsed by Mastodon.py and
atproto; per-account rate limits) count each account's polls. Two ``plnbot run
--worker`` processes then run for one poll interval (``PLNBOT_POLL_MINUTES=5``): every
account must be polled exactly once within it, none twice.

Baseline, same run: two processes doing the same HTTP requests per account with one
aiohttp session each (Mastodon ``verify_credentials``, ``instance``, ``notifications``;
Bluesky ``createSession``, ``listNotifications``) and a psycopg ``UPDATE`` + commit of the
account row: what a poll costs without plnbot (no client library, no decryption, no
events, no leases).

``python -m bench.bench_accounts [--quick]`` (1,000 accounts, a 1-minute interval);
needs PostgreSQL like bench_workers. Writes bench/results/accounts.json.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bench import fleet
from bench.bench_workers import scratch_database, seed_owners
from bench.common import parse_args, report
from bot.vault import Vault
from storage.db import make_engine, upgrade
from storage.models import Account

NOW = datetime.now(UTC).replace(microsecond=0)
WORKERS = 2


def seed_accounts(url: str, accounts: int, key: str, urls: tuple[str, str]) -> None:
    """``accounts / 2`` owners, each with a Mastodon and a Bluesky account, all due."""
    from cryptography.fernet import MultiFernet

    vault = Vault(MultiFernet([Fernet(key)]))
    mastodon_url, bluesky_url = urls
    # what the last poll stored: the fleet's accounts all have the template's count
    followers = fleet.make_account("template", domain=None)["followers_count"]
    rows = []
    for number in range(accounts):
        owner_id = number // 2 + 1
        if number % 2 == 0:
            credentials = {"instance": mastodon_url, "access_token": fleet.mastodon_token(number)}
            row = {"platform": "mastodon", "external_id": str(1_000_000 + number),
                   "handle": f"teacher{number:06d}@fleet.social", "cursor": "100",
                   "followers_count_seen": followers}
        else:
            credentials = {"handle": fleet.bluesky_handle(number),
                           "app_password": fleet.bluesky_password(number),
                           "server": bluesky_url}
            row = {"platform": "bluesky", "external_id": fleet._did(number),
                   "handle": fleet.bluesky_handle(number), "followers_count_seen": None,
                   "cursor": NOW.isoformat().replace("+00:00", "Z")}
        rows.append(row | {"owner_id": owner_id, "baseline_done": True,
                           "last_reconciled_at": NOW, "last_synced_at": NOW,
                           "credentials": vault.encrypt(credentials), "connected_at": NOW,
                           "next_poll_at": NOW})
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE owner, account RESTART IDENTITY CASCADE"))
        seed_owners(conn, accounts // 2)
        conn.execute(insert(Account), rows)
        conn.execute(text("ANALYZE"))
    engine.dispose()


def fleet_get(base: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(base + path, method=method, data=b"" if method == "POST"
                                     else None)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


# --- the baseline ----------------------------------------------------------------------


def plain_poller(url: str, urls: tuple[str, str], numbers: list[int], results) -> None:
    results.put(asyncio.run(_plain_polls(url, urls, numbers)))


async def _plain_polls(url: str, urls: tuple[str, str], numbers: list[int]) -> tuple:
    import aiohttp
    import psycopg

    mastodon_url, bluesky_url = urls
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    cpu = time.process_time()
    with psycopg.connect(dsn) as conn:
        async with aiohttp.ClientSession() as http:
            for number in numbers:
                if number % 2 == 0:
                    headers = {"Authorization": f"Bearer {fleet.mastodon_token(number)}"}
                    for path in ("/api/v1/accounts/verify_credentials", "/api/v1/instance/",
                                 "/api/v1/notifications?types[]=follow&since_id=100&limit=80"):
                        async with http.get(mastodon_url + path, headers=headers) as answer:
                            await answer.json()
                else:
                    async with http.post(
                            bluesky_url + "/xrpc/com.atproto.server.createSession",
                            json={"identifier": fleet.bluesky_handle(number),
                                  "password": fleet.bluesky_password(number)}) as answer:
                        session = await answer.json()
                    async with http.get(
                            bluesky_url + "/xrpc/app.bsky.notification.listNotifications"
                            "?reasons=follow&limit=50",
                            headers={"Authorization": f"Bearer {session['accessJwt']}"}
                    ) as answer:
                        await answer.json()
                conn.execute("UPDATE account SET last_polled_at = now() WHERE id = %s",
                             (number + 1,))
                conn.commit()
    return len(numbers), time.process_time() - cpu


def plain_polls(url: str, urls: tuple[str, str], accounts: int) -> dict:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    numbers = list(range(accounts))
    procs = [context.Process(target=plain_poller,
                             args=(url, urls, numbers[index::WORKERS], results))
             for index in range(WORKERS)]
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    answers = [results.get() for _ in procs]
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join()
    assert sum(count for count, _ in answers) == accounts
    return {"per_s": accounts / elapsed, "seconds": elapsed,
            "cpu_s": sum(cpu for _, cpu in answers)}


# --- plnbot ------------------------------------------------------------------------------


def worker_environment(key: str, minutes: int) -> dict[str, str]:
    """This environment without any platform account or plnbot setting, plus the key."""
    prefixes = ("PLNBOT_", "MASTODON_", "BLUESKY_", "X_", "DISCORD_", "DATABASE_URL")
    env = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    return env | {"PLNBOT_SECRET_KEY": key, "PLNBOT_POLL_MINUTES": str(minutes),
                  "PYTHONUNBUFFERED": "1"}


def run_workers(url: str, urls: tuple[str, str], accounts: int, key: str, minutes: int,
                logs: Path) -> dict:
    """Two ``plnbot run --worker`` for one interval; who was polled when, and the cost."""
    env = worker_environment(key, minutes)
    interval = minutes * 60
    began = time.time()
    procs = []
    for index in range(WORKERS):
        with (logs / f"worker{index}.log").open("wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--worker", "--db", url],
                env=env, stdout=log, stderr=subprocess.STDOUT))
    progress = []
    while time.time() - began < interval:
        time.sleep(min(10.0, max(0.0, interval - (time.time() - began))))
        polls = fleet_get(urls[0], "/_fleet/polls")["polls"]
        progress.append((round(time.time() - began), len(polls)))
    answer = fleet_get(urls[0], "/_fleet/polls")
    usage = [processor_seconds(proc.pid) for proc in procs]  # at the interval's end
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    stopped = time.time()
    for proc in procs:
        proc.wait(timeout=120)
    stop_s = time.time() - stopped
    return summarise(answer, began, interval, accounts) | {
        "progress_accounts_polled": progress, "worker_cpu_s": round(sum(usage), 1),
        "worker_cpu_ms_per_poll": round(sum(usage) / max(1, len(answer["polls"])) * 1000, 1),
        "fleet_requests": answer["requests"], "sigterm_to_exit_s": round(stop_s, 1),
        "errors_in_logs": sum(path.read_text(errors="replace").count("Traceback")
                              for path in logs.glob("worker*.log"))}


def processor_seconds(pid: int) -> float:
    """User + system time of a running process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(answer: dict, began: float, interval: float, accounts: int) -> dict:
    times = answer["polls"]
    inside = {key: [t for t in moments if t - began <= interval]
              for key, moments in times.items()}
    counts = [len(moments) for moments in inside.values() if moments]
    firsts = sorted(min(moments) - began for moments in inside.values() if moments)
    polled = len(counts)
    figures = {"accounts": accounts, "polled_in_interval": polled,
               "polled_exactly_once": counts.count(1),
               "polled_more_than_once": sum(1 for count in counts if count > 1),
               "never_polled": accounts - polled}
    if firsts:
        figures["first_poll_s"] = round(firsts[0], 1)
        figures["last_first_poll_s"] = round(firsts[-1], 1)
        span = max(1e-9, firsts[-1] - firsts[0])
        figures["polls_per_s"] = round(polled / span, 1)
        figures["polls_per_s_steady"] = round(
            (len(firsts) * 8 // 10 - len(firsts) // 10)
            / max(1e-9, firsts[len(firsts) * 8 // 10] - firsts[len(firsts) // 10]), 1)
    return figures


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    accounts, minutes = (1_000, 1) if args.quick else (10_000, 5)
    key = Fernet.generate_key().decode()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=fleet.serve, args=(ready, stop))
    server.start()
    urls = ready.get(timeout=60)
    logs = Path(os.environ.get("BENCH_LOGS", "/tmp")) / f"plnbot_bench_accounts_{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with scratch_database() as url:
            upgrade(make_engine(url))
            seed_accounts(url, accounts, key, urls)
            baseline = plain_polls(url, urls, accounts)
            fleet_get(urls[0], "/_fleet/reset", "POST")
            cpu_before = fleet_get(urls[0], "/_fleet/polls")["cpu_s"]
            figures = run_workers(url, urls, accounts, key, minutes, logs)
            fleet_cpu = fleet_get(urls[0], "/_fleet/polls")["cpu_s"] - cpu_before
    finally:
        stop.set()
        server.join(timeout=30)
    figures |= {"interval_minutes": minutes, "workers": WORKERS,
                "fleet_server_cpu_s": round(fleet_cpu, 1),
                "plain_polls_per_s": round(baseline["per_s"], 1),
                "plain_cpu_ms_per_poll": round(baseline["cpu_s"] / accounts * 1000, 2),
                "needed_polls_per_s": round(accounts / (minutes * 60), 1),
                "logs": str(logs)}
    if figures.get("polls_per_s_steady"):
        figures["ratio_to_plain"] = round(figures["polls_per_s_steady"] / baseline["per_s"], 2)
    report("accounts", figures)


if __name__ == "__main__":
    main()
