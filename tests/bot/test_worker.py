"""Multi-owner workers in one process (SQLite and PostgreSQL), with an injected clock."""


import pytest
from sqlmodel import Session, select

from bot.app import App
from bot.worker import NoRoute, RoutingSurface, Worker
from handlers.due import MAX_IDLE
from storage.models import Draft, OutboxMessage, Owner
from tests.conftest import make_settings
from tests.support.factories import arrival, x_person
from tests.support.fakes import FakeSurface
from tests.support.workload import seed_outbox, seed_owners


@pytest.fixture
def make_worker(engine, clock):
    def make(surface=None, **settings):
        return Worker(settings=make_settings(**settings), engine=engine,
                      surface=surface or FakeSurface(), clock=clock)
    return make


def statuses(engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage.status)).all()
    return {status: rows.count(status) for status in set(rows)}


async def test_one_worker_delivers_every_owners_messages_routed_by_owner(
        engine, clock, make_worker):
    owners = seed_owners(engine, 5, now=clock())
    keys = seed_outbox(engine, owners, 3, now=clock())
    surface = FakeSurface()
    assert await make_worker(surface).drain() == 5
    assert sorted(m.idempotency_key for m in surface.messages) == sorted(keys)
    by_owner = {m.owner_ref for m in surface.messages if m.idempotency_key.startswith(
        f"{owners[2]}:")}
    assert by_owner == {"owner-2"}
    assert statuses(engine) == {"sent": 15}


async def test_two_workers_interleaved_deliver_each_message_once(engine, clock, make_worker):
    keys = seed_outbox(engine, seed_owners(engine, 30, now=clock()), 4, now=clock())
    a, b = FakeSurface(), FakeSurface()
    workers = [make_worker(a), make_worker(b)]
    while sum([await w.run_once() for w in workers]):
        pass
    delivered = [m.idempotency_key for m in a.messages + b.messages]
    assert sorted(delivered) == sorted(keys)
    assert a.messages and b.messages


async def test_every_owner_is_swept_when_its_work_is_due(engine, clock, make_worker):
    """The sweep (Tick) runs per owner when its next work is due: here it expires each
    owner's stale draft; then nothing is due for hours (handlers/due.py)."""
    settings = make_settings()
    for ref in ("amara", "ravi"):
        app = App(settings=make_settings(PLNBOT_OWNER=ref), engine=engine,
                  surface=FakeSurface(), clock=clock)
        await app.handle(arrival(x_person("Jane Doe"), owner_ref=ref))
    worker = make_worker(PLNBOT_SWEEP_SECONDS=30)
    assert await worker.drain() == 2
    assert await worker.drain() == 0
    clock.advance(days=settings.draft_expiry_days, seconds=1)
    assert await worker.drain() == 2
    with Session(engine) as session:
        assert {d.status for d in session.exec(select(Draft))} == {"expired"}
        sweeps = {o.external_ref: o.next_sweep_at for o in session.exec(select(Owner))}
    assert sweeps["amara"] == clock.now + MAX_IDLE


async def test_a_dead_workers_owners_are_taken_over_after_the_lease(engine, clock, make_worker):
    keys = seed_outbox(engine, seed_owners(engine, 4, now=clock()), 2, now=clock())
    dead = make_worker(PLNBOT_LEASE_SECONDS=60)
    assert len(dead.claim_owners()) == 4  # …and then it dies without serving them
    surface = FakeSurface()
    alive = make_worker(surface)
    assert await alive.drain() == 0 and surface.messages == []
    clock.advance(seconds=61)
    assert await alive.drain() == 4
    assert sorted(m.idempotency_key for m in surface.messages) == sorted(keys)


async def test_a_worker_that_lost_its_owner_leaves_it(engine, clock, make_worker):
    [owner] = seed_owners(engine, 1, now=clock())
    seed_outbox(engine, [owner], 1, now=clock())
    slow, fast = make_worker(), make_worker()
    assert slow.claim_owners() == [owner]
    clock.advance(seconds=61)
    assert await fast.drain() == 1
    assert await slow.serve(owner) == 0
    assert statuses(engine) == {"sent": 1}


async def test_routing_by_owner_scheme_and_no_route_retries_later(engine, clock, make_worker):
    owners = seed_owners(engine, 1, now=clock(), prefix="discord:42")
    owners += seed_owners(engine, 1, now=clock(), prefix="matrix:7")
    seed_outbox(engine, owners, 1, now=clock())
    discord = FakeSurface()
    surface = RoutingSurface({"discord": discord})
    await make_worker(surface).drain()
    assert [m.owner_ref for m in discord.messages] == ["discord:42-0"]
    with Session(engine) as session:
        waiting = session.exec(select(OutboxMessage).where(OutboxMessage.status == "pending")).one()
    assert "NoRoute" in waiting.last_error and waiting.next_attempt_at > clock.now
    with pytest.raises(NoRoute):
        surface.route("matrix:7-0")


class CountingSource:
    platform = "mastodon"

    def __init__(self):
        self.polls = 0

    async def poll(self, app):
        self.polls += 1


async def test_an_account_is_not_polled_by_two_apps_at_once(engine, clock):
    def make_app(source):
        return App(settings=make_settings(), engine=engine, surface=FakeSurface(), clock=clock,
                   sources=[source])

    first, second = CountingSource(), CountingSource()
    one, two = make_app(first), make_app(second)
    async with one.account_lease("mastodon") as held:
        assert held
        await two.poll_sources()
    assert second.polls == 0
    await two.poll_sources()
    assert second.polls == 1


async def test_a_dead_apps_account_is_polled_after_its_lease_expires(engine, clock):
    from storage import leases

    source = CountingSource()
    app = App(settings=make_settings(), engine=engine, surface=FakeSurface(), clock=clock,
              sources=[source])
    with Session(engine) as session:
        assert leases.claim_account(session, owner_id=app.owner_id, platform="mastodon",
                                    worker="dead", now=clock()) is not None
    await app.poll_sources()
    assert source.polls == 0
    clock.advance(seconds=61)
    await app.poll_sources()
    assert source.polls == 1


async def test_messages_leased_by_a_dead_process_on_this_host_are_taken_over_at_once(
        engine, clock):
    import socket
    import subprocess
    import sys

    from bot.outbox import Outbox
    from storage import leases

    keys = seed_outbox(engine, seed_owners(engine, 1, now=clock()), 3, now=clock())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with Session(engine) as session:
        leases.claim(session, OutboxMessage, where=[], worker=f"{socket.gethostname()}:{gone}:x",
                     now=clock())
        leases.claim(session, OutboxMessage, where=[], worker="elsewhere:1:y", now=clock())
    surface = FakeSurface()
    assert await Outbox(engine, clock=clock).deliver(surface) == 3
    assert sorted(m.idempotency_key for m in surface.messages) == sorted(keys)
