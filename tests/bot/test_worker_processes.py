"""Three ``plnbot run --worker`` processes share one PostgreSQL database.

(Last: two workers poll chat-connected accounts on bench_accounts' fake servers, and one
is SIGKILLed mid-pass: every account is polled, at most the one in flight twice.)

Due reminders across many owners (5,000 across 500 in the crash test): every reminder
reaches exactly one delivered message, and every message is printed once — also when
one worker is SIGKILLed in the middle of its work (its owners and messages are taken
over when its 2-second leases expire; a message it printed but had not yet marked sent
is printed again with the same idempotency key, which is what a consumer drops repeats
by).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from storage.db import make_engine, upgrade
from storage.models import OutboxMessage, Reminder
from tests.support.cli import ROOT
from tests.support.workload import seed_owners, seed_reminders

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PER_OWNER = 10


@pytest.fixture
def seed(pg_url):
    engines = []

    def seed(owners):
        engine = make_engine(pg_url)
        engines.append(engine)
        upgrade(engine)
        with engine.connect() as conn:  # the test is about claims, not about fsync
            conn.execute(text(
                f'ALTER DATABASE "{engine.url.database}" SET synchronous_commit = off'))
            conn.commit()
        now = datetime.now(UTC)
        owner_ids = seed_owners(engine, owners, now=now - timedelta(days=1))
        ids = seed_reminders(engine, owner_ids, PER_OWNER, due_at=now - timedelta(minutes=1),
                             now=now)
        return engine, ids

    yield seed
    for engine in engines:
        engine.dispose()


@pytest.fixture
def workers(pg_url, tmp_path):
    """Start worker processes; whatever happens, none outlives the test (or its database)."""
    started = []

    def start(count):
        outs = [tmp_path / f"worker{n}.jsonl" for n in range(count)]
        started.extend(start_worker(pg_url, out, f"w{n}") for n, out in enumerate(outs))
        return started, outs

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_worker(pg_url, out, name, extra: dict[str, str] | None = None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(out.parent),
           "DATABASE_URL": pg_url, "PLNBOT_LEASE_SECONDS": "2", "PLNBOT_SWEEP_SECONDS": "3600",
           "PLNBOT_WORKER_ID": name, "PLNBOT_DATA_DIR": str(out.parent), **(extra or {})}
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--worker", "--json"],
                            stdout=out.open("w"), stderr=out.with_suffix(".log").open("w"),
                            env=env, cwd=ROOT)


def logs(procs_outs):
    return "\n".join(out.with_suffix(".log").read_text()[-3000:] for out in procs_outs)


def wait_until_all_delivered(engine, count, procs, outs, timeout=150.0):
    """Poll the database (the workers run until told to stop) until every reminder is
    delivered and every message sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            delivered = conn.execute(select(func.count()).where(
                Reminder.status == "delivered")).scalar()
            pending = conn.execute(select(func.count()).where(
                OutboxMessage.status == "pending")).scalar()
        if delivered == count and pending == 0:
            return
        assert all(p.poll() is None for p in procs), logs(outs)
        time.sleep(0.2)  # waiting on other processes, not timing the code under test
    pytest.fail(f"only {delivered} of {count} reminders delivered, {pending} pending\n"
                + logs(outs))


def stop(procs, outs):
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=30) == 0, logs(outs)


def printed(paths):
    lines = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    return [m for m in lines if m["kind"] == "reminder"]


def check_exactly_once(messages, ids, *, allowed_repeats):
    keys_of = defaultdict(set)
    for message in messages:
        for reminder_id in message["reminder_ids"]:
            keys_of[reminder_id].add(message["key"])
    assert sorted(keys_of) == sorted(ids), "every reminder delivered"
    assert all(len(keys) == 1 for keys in keys_of.values()), "in exactly one message"
    repeats = [key for key, n in Counter(m["key"] for m in messages).items() if n > 1]
    assert len(repeats) <= allowed_repeats, repeats
    return repeats


def test_three_workers_deliver_each_reminder_exactly_once(seed, workers):
    engine, ids = seed(40)
    procs, outs = workers(3)
    wait_until_all_delivered(engine, len(ids), procs, outs)
    stop(procs, outs)
    messages = printed(outs)
    check_exactly_once(messages, ids, allowed_repeats=0)
    # Owners are claimed 20 at a time, so a worker that starts late may find none left.
    assert sum(bool(printed([out])) for out in outs) >= 2, "the work was shared"


@pytest.mark.crash  # a kill -9 trial: `make test-crash`
def test_a_killed_worker_is_taken_over_and_still_exactly_once(seed, workers):
    engine, ids = seed(500)
    procs, outs = workers(3)
    victim = procs[0]
    while len(outs[0].read_text().splitlines()) < 5:
        assert victim.poll() is None, logs(outs[:1])
        time.sleep(0.05)  # waiting for the victim to be mid-run
    victim.kill()
    victim.wait()
    wait_until_all_delivered(engine, len(ids), procs[1:], outs[1:])
    stop(procs[1:], outs[1:])
    repeats = check_exactly_once(printed(outs), ids, allowed_repeats=1)
    if repeats:  # the one message the victim printed but had not yet marked sent
        assert repeats[0] in {m["key"] for m in printed(outs[:1])}


@pytest.fixture
def fleet_servers():
    """The fake Mastodon and Bluesky servers of bench_accounts, in their own process."""
    import multiprocessing

    from bench import fleet

    context = multiprocessing.get_context("spawn")
    ready, halt = context.Queue(), context.Event()
    server = context.Process(target=fleet.serve, args=(ready, halt))
    server.start()
    try:
        yield ready.get(timeout=60)
    finally:
        halt.set()
        server.join(timeout=30)


def fleet_polls(urls) -> dict[str, list[float]]:
    import urllib.request

    with urllib.request.urlopen(urls[0] + "/_fleet/polls", timeout=30) as answer:
        return json.loads(answer.read())["polls"]


@pytest.mark.crash  # a kill -9 trial: `make test-crash`
def test_a_worker_killed_while_polling_connected_accounts_repeats_at_most_one(
        pg_url, fleet_servers, tmp_path):
    """Two workers poll 300 chat-connected accounts; one is SIGKILLed mid-pass. Every
    account is polled; the accounts it had claimed but not polled are polled by the
    other once their leases expire; only the poll in flight may happen twice (each
    account polled is given back at once, not at the end of its batch)."""
    from cryptography.fernet import Fernet

    from bench.bench_accounts import seed_accounts

    accounts, key = 300, Fernet.generate_key().decode()
    upgrade(make_engine(pg_url))
    seed_accounts(pg_url, accounts, key, fleet_servers)
    extra = {"PLNBOT_SECRET_KEY": key, "PLNBOT_POLL_MINUTES": "60",
             "PLNBOT_LEASE_SECONDS": "5"}
    outs = [tmp_path / f"worker{n}.jsonl" for n in range(2)]
    procs = [start_worker(pg_url, out, f"w{n}", extra) for n, out in enumerate(outs)]
    try:
        deadline = time.monotonic() + 60
        while len(fleet_polls(fleet_servers)) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting on other processes, not timing the code under test
        procs[0].kill()
        procs[0].wait()
        with make_engine(pg_url).connect() as conn:  # it died holding a claimed batch
            held = conn.execute(text(
                "SELECT count(*) FROM account WHERE lease_owner LIKE 'w0@%'")).scalar()
        assert held, "the victim was killed between batches: no trial"
        deadline = time.monotonic() + 150  # the survivor's next pass: within 30 s + lease
        while len(polls := fleet_polls(fleet_servers)) < accounts:
            assert procs[1].poll() is None, logs(outs[1:])
            assert time.monotonic() < deadline, f"{len(polls)} polled\n" + logs(outs)
            time.sleep(0.5)
        time.sleep(6)  # one lease more: nothing else may be polled again
        polls = fleet_polls(fleet_servers)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(polls) == accounts
    assert sum(len(times) > 1 for times in polls.values()) <= 1, logs(outs)
