"""An owner's own platform accounts as connected by chat, and the bot's platform apps.

Credentials arrive here already encrypted (a Fernet token made by bot/vault.py) and
leave encrypted: this module never sees a plain secret. Every function that reads or
changes an account takes the owner's id, so no owner reaches another's accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection, Row, and_
from sqlmodel import Session, col, select

from storage.models import Account, Owner, PlatformApp
from storage.models import Connection as ConnectionRow


def platform_app(session: Session, *, platform: str, instance: str) -> PlatformApp | None:
    return session.exec(select(PlatformApp).where(
        PlatformApp.platform == platform, PlatformApp.instance == instance)).first()


def save_platform_app(session: Session, *, platform: str, instance: str, credentials: str,
                      now: datetime) -> PlatformApp:
    app = PlatformApp(platform=platform, instance=instance, credentials=credentials,
                      created_at=now)
    session.add(app)
    session.flush()
    return app


def owner_account(session: Session, *, owner_id: int, platform: str,
                  external_id: str | None = None) -> Account | None:
    """The owner's account on ``platform`` with that id there; without an id, their
    oldest account there (the one of an owner who has only one)."""
    query = select(Account).where(Account.owner_id == owner_id, Account.platform == platform)
    if external_id is not None:
        query = query.where(Account.external_id == external_id)
    return session.exec(query.order_by(col(Account.id))).first()


def owner_accounts(session: Session, *, owner_id: int,
                   platform: str | None = None) -> list[Account]:
    """The owner's accounts worth listing (on ``platform`` only, when named): connected,
    waiting for a code, or known; by platform, then in the order they were added."""
    query = select(Account).where(Account.owner_id == owner_id)
    if platform is not None:
        query = query.where(Account.platform == platform)
    rows = session.exec(query.order_by(col(Account.platform), col(Account.id)))
    return [a for a in rows if a.connected_at or a.credentials or a.handle]


def keep_pending(session: Session, *, owner_id: int, platform: str,
                 credentials: str) -> Account:
    """Store a half-made connection (what the pasted code will need), encrypted, in the
    owner's row on ``platform`` whose id there is not known yet: the accounts already
    connected go on being polled, whichever account the code turns out to be."""
    account = owner_account(session, owner_id=owner_id, platform=platform, external_id="")
    if account is None:
        account = Account(owner_id=owner_id, platform=platform)
    account.credentials = credentials
    session.add(account)
    session.flush()
    return account


def mark_connected(session: Session, *, owner_id: int, platform: str, external_id: str,
                   handle: str, credentials: str | None, now: datetime,
                   welcome_channel: str | None = None) -> Account:
    """The account is connected: polled from now on, the first poll being the quiet
    baseline. The same account connected again (the same id on the platform) keeps its
    row, baseline and history with fresh credentials; another one is an account of its
    own, next to the owner's others. The row that waited for this code becomes the new
    account, or (the account was known) goes.
    ``welcome_channel``: where a Discord server's welcomes are posted (None: DMs)."""
    account = owner_account(session, owner_id=owner_id, platform=platform,
                            external_id=external_id)
    waiting = owner_account(session, owner_id=owner_id, platform=platform, external_id="")
    if waiting is not None and waiting.connected_at is None and waiting.credentials:
        if account is None:
            account = waiting
        else:
            _forget_wait(session, waiting)
    if account is None:
        account = Account(owner_id=owner_id, platform=platform)
    account.external_id, account.handle = external_id, handle
    account.credentials, account.connected_at = credentials, now
    account.welcome_channel = welcome_channel
    account.next_poll_at, account.last_error, account.last_error_at = now, None, None
    session.add(account)
    session.flush()
    return account


def _forget_wait(session: Session, waiting: Account) -> None:
    """A row that only held a wait for a code: deleted, unless something refers to it
    (then only its credentials go)."""
    used = session.exec(select(ConnectionRow.id)
                        .where(ConnectionRow.account_id == waiting.id).limit(1)).first()
    if used is None:
        session.delete(waiting)
    else:
        waiting.credentials = None
        session.add(waiting)


def connected_by_chat(connection: Connection, *, platform: str,
                      external_id: str | None = None,
                      owner_id: int | None = None) -> Sequence[Row]:
    """Every account on ``platform`` connected by chat right now, by account id; or only
    those with ``external_id`` (the owners who connected one Discord server), or only
    ``owner_id``'s. A disconnected account is not among them.

    Plain rows (``account_id``, ``owner_id``, ``owner_ref``, ``external_id``,
    ``baseline_done``, ``synced``: its connections were read since it was last
    connected, ``welcome_channel``) on a plain connection, not ORM objects: the gateway
    holder reads them for every member event and all of them on every reconnect
    (bench/bench_servers.py)."""
    synced = and_(col(Account.last_synced_at).is_not(None),
                  col(Account.last_synced_at) >= col(Account.connected_at))
    query: sa.Select = (sa.select(col(Account.id).label("account_id"), col(Account.owner_id),
                                  col(Owner.external_ref).label("owner_ref"),
                                  col(Account.external_id), col(Account.baseline_done),
                                  synced.label("synced"), col(Account.welcome_channel))
                        .join(Owner, col(Owner.id) == col(Account.owner_id))
                        .where(col(Account.platform) == platform,
                               col(Account.connected_at).is_not(None)))
    if external_id is not None:
        query = query.where(col(Account.external_id) == external_id)
    if owner_id is not None:
        query = query.where(col(Account.owner_id) == owner_id)
    return connection.execute(query.order_by(col(Account.id))).all()


def arrival_welcome_channel(connection: Connection, *, owner_id: int, handle_id: int,
                            platform: str) -> str | None:
    """The welcome channel of the owner's connected account on ``platform`` whose
    connection to this handle is the newest (still active ones first): a member of two
    of the owner's servers is welcomed where they just arrived."""
    query = (sa.select(col(Account.welcome_channel))
             .join(ConnectionRow, col(ConnectionRow.account_id) == col(Account.id))
             .where(col(ConnectionRow.owner_id) == owner_id,
                    col(ConnectionRow.handle_id) == handle_id,
                    col(Account.owner_id) == owner_id, col(Account.platform) == platform,
                    col(Account.connected_at).is_not(None))
             .order_by((col(ConnectionRow.state) == "active").desc(),
                       col(ConnectionRow.since).desc(), col(ConnectionRow.id).desc())
             .limit(1))
    return connection.execute(query).scalar()


def disconnect(session: Session, *, owner_id: int, account_id: int) -> Account | None:
    """Stop polling the owner's account and delete its credentials; its history and
    connections stay as they are (nobody is counted as gone). None: no such account of
    theirs connected by chat."""
    account = session.get(Account, account_id)
    if account is None or account.owner_id != owner_id or (
            account.connected_at is None and account.credentials is None):
        return None
    account.credentials = account.connected_at = account.next_poll_at = None
    account.last_error = account.last_error_at = None
    session.add(account)
    session.flush()
    return account
