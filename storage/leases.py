"""Leases: how several workers share one database without doing anything twice.

A lease is two columns on a row (``lease_owner``, ``lease_until``). A worker claims
rows by writing its id and an expiry into them; everyone else skips a row whose lease
has not expired. A worker that dies simply stops renewing, and its rows become
claimable again when ``lease_until`` passes, so nothing is lost and nothing waits
for a human.

How a claim is made depends on the database, with the same result:

- PostgreSQL: ``WITH claimed AS (SELECT id … LIMIT n FOR UPDATE SKIP LOCKED)
  UPDATE … FROM claimed RETURNING id``.
  Concurrent claimers never block each other and never get the same row: a row another
  claimer is locking right now is skipped, a row leased earlier is filtered out.
- SQLite: the same conditional UPDATE without ``FOR UPDATE`` (SQLite has one writer at
  a time, so the statement is atomic on its own).

Tables with lease columns: ``owner`` (who serves an owner: sweeps and delivery),
``outboxmessage`` (who delivers a message), ``account`` (who polls an account),
``reminder``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.models import Account

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=60)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lease_free(model: Any, now: datetime) -> ColumnElement[bool]:
    """Nobody holds the row, or their lease has expired."""
    return or_(col(model.lease_until).is_(None), col(model.lease_until) < now)


def held_by(model: Any, worker: str, now: datetime) -> ColumnElement[bool]:
    return and_(col(model.lease_owner) == worker, col(model.lease_until) >= now)


def claim(
    session: Session,
    model: Any,
    *,
    where: Sequence[ColumnElement[bool]],
    worker: str,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    order_by: Sequence[Any] = (),
    limit: int = 100,
) -> list[int]:
    """Lease up to ``limit`` rows of ``model`` matching ``where``; return their ids, sorted.

    Commits, so the lease is visible to every other worker at once.
    """
    conditions = [*where, lease_free(model, now)]
    candidates = (
        select(model.id).where(*conditions).order_by(*order_by, model.id).limit(limit)
    )
    if is_postgresql(session):
        # A CTE is evaluated exactly once; ``id IN (subquery … SKIP LOCKED)`` may be
        # re-run per row by the planner and then claim far more than ``limit`` rows.
        claimed = candidates.with_for_update(skip_locked=True).cte("claimed")
        chosen = col(model.id) == claimed.c.id
    else:
        chosen = col(model.id).in_(candidates.scalar_subquery())
    statement = (
        update(model)
        .where(chosen, *conditions)
        .values(lease_owner=worker, lease_until=now + lease)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(session.execute(statement).scalars())
    session.commit()
    return ids


def renew(
    session: Session, model: Any, ids: Sequence[int], *, worker: str, now: datetime,
    lease: timedelta = DEFAULT_LEASE,
) -> list[int]:
    """Extend this worker's still-valid leases; returns the ids it still holds.

    A row missing from the answer was taken over (this worker was too slow): leave it.
    """
    if not ids:
        return []
    statement = (
        update(model)
        .where(col(model.id).in_(list(ids)), held_by(model, worker, now))
        .values(lease_until=now + lease)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    held = sorted(session.execute(statement).scalars())
    session.commit()
    return held


def release(session: Session, model: Any, ids: Sequence[int], *, worker: str,
            **values: Any) -> None:
    """Give back this worker's leases (optionally setting other columns in the same write)."""
    if not ids:
        return
    session.execute(
        update(model)
        .where(col(model.id).in_(list(ids)), col(model.lease_owner) == worker)
        .values(lease_owner=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    session.commit()


@contextmanager
def hand_back(engine: Engine) -> Iterator[Session]:
    """A session for giving many leases back one by one, each write one round trip.

    One connection (checked once, not before every write), in autocommit, and on
    PostgreSQL with ``synchronous_commit`` off: a commit does not wait for the disk
    (about 10 ms each on bench_accounts' machine, a third of a poll). For writes whose
    loss is harmless only: a database crash may forget the last fraction of a second of
    them, and those rows stay leased until ``lease_until`` passes, as if this worker had
    died. Any later ordinary commit makes them durable too (the log is written in order).
    The setting is reset before the connection goes back to the pool.
    """
    with engine.connect() as connection:
        quick = connection.dialect.name == "postgresql"
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if quick:
            connection.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            with Session(bind=connection, expire_on_commit=False) as session:
                yield session
        finally:
            if quick:
                try:
                    connection.exec_driver_sql("RESET synchronous_commit")
                except BaseException:  # never back to the pool with the setting on
                    connection.invalidate()
                    raise


# --- account polls -------------------------------------------------------------------


def account_id_for(session: Session, *, owner_id: int, platform: str) -> int:
    """The owner's account row on ``platform``, created when missing (race-safe): the
    environment's, which comes before any connected by chat (as ``repo`` finds it)."""
    query = select(col(Account.id)).where(
        col(Account.owner_id) == owner_id, col(Account.platform) == platform
    ).order_by(col(Account.connected_at).is_not(None), col(Account.id)).limit(1)
    found = session.execute(query).scalar()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            account = Account(owner_id=owner_id, platform=platform)
            session.add(account)
        session.commit()
        return account.id
    except IntegrityError:  # another worker created it a moment ago
        session.rollback()
        return session.execute(query).scalar_one()


def claim_account(
    session: Session, *, owner_id: int, platform: str, worker: str, now: datetime,
    lease: timedelta = DEFAULT_LEASE,
) -> int | None:
    """Lease the owner's ``platform`` account for one poll; None when another worker has it."""
    account_id = account_id_for(session, owner_id=owner_id, platform=platform)
    ids = claim(session, Account, where=[col(Account.id) == account_id], worker=worker, now=now,
                lease=lease, limit=1)
    return ids[0] if ids else None


def claim_due_accounts(
    session: Session, *, platform: str, worker: str, now: datetime, poll_every: timedelta,
    lease: timedelta = DEFAULT_LEASE, limit: int = 50,
) -> list[int]:
    """Lease accounts on ``platform`` not polled for ``poll_every`` (any owner), oldest first.

    For a source that serves many owners' accounts: each worker polls only what it
    claimed, so no account is polled by two workers at once.
    """
    last = col(Account.last_synced_at)
    due = or_(last.is_(None), last <= now - poll_every)
    return claim(
        session, Account, where=[col(Account.platform) == platform, due], worker=worker, now=now,
        lease=lease, order_by=[col(Account.last_synced_at).asc().nulls_first()], limit=limit,
    )
