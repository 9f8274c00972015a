"""Leases on SQLite and PostgreSQL: one holder at a time, takeover after expiry."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from storage import leases
from storage.models import Account, OutboxMessage
from tests.support.fakes import FakeClock
from tests.support.workload import seed_outbox, seed_owners

LEASE = timedelta(seconds=60)


@pytest.fixture
def owners(engine, clock):
    return seed_owners(engine, 3, now=clock())


def claim_messages(engine, worker, clock, limit=100):
    with Session(engine) as session:
        return leases.claim(session, OutboxMessage, where=[OutboxMessage.status == "pending"],
                            worker=worker, now=clock(), lease=LEASE, limit=limit)


def test_two_workers_get_disjoint_rows(engine, owners, clock):
    seed_outbox(engine, owners, 4, now=clock())
    first = claim_messages(engine, "a", clock, limit=5)
    second = claim_messages(engine, "b", clock)
    assert len(first) == 5 and len(second) == 7
    assert not set(first) & set(second)
    assert claim_messages(engine, "c", clock) == []


def test_an_expired_lease_is_taken_over(engine, owners, clock):
    seed_outbox(engine, owners[:1], 2, now=clock())
    held = claim_messages(engine, "dead", clock)
    clock.advance(seconds=59)
    assert claim_messages(engine, "b", clock) == []
    clock.advance(seconds=2)
    assert claim_messages(engine, "b", clock) == held
    with Session(engine) as session:
        assert leases.renew(session, OutboxMessage, held, worker="dead", now=clock()) == []
        assert leases.renew(session, OutboxMessage, held, worker="b", now=clock()) == held


def test_release_frees_rows_and_sets_values(engine, owners, clock):
    seed_outbox(engine, owners[:1], 2, now=clock())
    held = claim_messages(engine, "a", clock)
    with Session(engine) as session:
        leases.release(session, OutboxMessage, held[:1], worker="someone-else", status="sent")
        leases.release(session, OutboxMessage, held[:1], worker="a", status="sent")
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(r.status, r.lease_owner) for r in rows] == [("sent", None), ("pending", "a")]


def test_leases_handed_back_one_by_one_are_freed_and_the_pool_is_left_as_it_was(
        engine, owners, clock):
    """``hand_back``: each release is written at once (visible to another session before
    the block ends), and the connection goes back to the pool waiting for the disk again."""
    seed_outbox(engine, owners[:1], 2, now=clock())
    held = claim_messages(engine, "a", clock)
    with leases.hand_back(engine) as session:
        for message_id in held:
            leases.release(session, OutboxMessage, [message_id], worker="a", status="sent")
            with Session(engine) as other:
                row = other.get_one(OutboxMessage, message_id)
                assert (row.status, row.lease_owner) == ("sent", None)
    if engine.dialect.name == "postgresql":  # every connection the pool holds, at once
        connections = [engine.connect() for _ in range(engine.pool.checkedin() + 1)]
        try:
            assert {c.exec_driver_sql("SHOW synchronous_commit").scalar()
                    for c in connections} == {"on"}
        finally:
            for connection in connections:
                connection.close()


def test_concurrent_claimers_never_share_a_row(engine, owners, clock):
    """Eight threads claiming at once (real row locks on PostgreSQL)."""
    keys = seed_outbox(engine, owners, 100, now=clock())

    def claim_all(worker):
        got = []
        while batch := claim_messages(engine, worker, clock, limit=7):
            got += batch
        return got

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim_all, [f"w{n}" for n in range(8)]))
    claimed = [i for result in results for i in result]
    assert len(claimed) == len(set(claimed)) == len(keys)


def test_an_account_is_polled_by_one_worker_until_its_lease_expires(engine, owners, clock):
    with Session(engine) as session:
        first = leases.claim_account(session, owner_id=owners[0], platform="x", worker="a",
                                     now=clock())
        assert first is not None
        assert leases.claim_account(session, owner_id=owners[0], platform="x", worker="b",
                                    now=clock()) is None
        clock.advance(seconds=61)
        assert leases.claim_account(session, owner_id=owners[0], platform="x", worker="b",
                                    now=clock()) == first
        assert len(session.exec(select(Account)).all()) == 1


def test_due_accounts_are_shared_out_oldest_first(engine, owners, clock):
    with Session(engine) as session:
        for owner_id, synced in zip(owners, [None, clock.now - timedelta(hours=2),
                                             clock.now - timedelta(minutes=1)], strict=True):
            session.add(Account(owner_id=owner_id, platform="mastodon", last_synced_at=synced))
        session.commit()
        every = timedelta(minutes=5)
        a = leases.claim_due_accounts(session, platform="mastodon", worker="a", now=clock(),
                                      poll_every=every, limit=1)
        b = leases.claim_due_accounts(session, platform="mastodon", worker="b", now=clock(),
                                      poll_every=every)
        c = leases.claim_due_accounts(session, platform="x", worker="c", now=clock(),
                                      poll_every=every)
        owner_of = {acc.id: acc.owner_id for acc in session.exec(select(Account))}
    assert [owner_of[i] for i in a] == [owners[0]]
    assert [owner_of[i] for i in b] == [owners[1]] and c == []


@pytest.fixture
def clock():
    return FakeClock()
