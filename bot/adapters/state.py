"""A polling source's own durable state: its cursor and when it last reconciled.

Sources keep their place in the database (``Account.cursor``), never in memory, so a
restart resumes where the last committed poll stopped. A source never saves its cursor
itself: it puts it on the event that covers the people up to there
(``Event.cursor``), and the dispatcher saves it in that event's own transaction. A
failed dispatch or a crash leaves it where it was, so the people are fetched again,
and the handlers treat a repeated arrival as already known: nothing is lost or doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.vault import vault_from
from storage import connections as store
from storage import repo
from storage.db import session_scope
from storage.models import Account, Connection, Handle, Owner

if TYPE_CHECKING:
    from bot.app import App


# More new followers than this in one poll (a viral post, a bot that was down for a
# week) go to the sync engine as one partial list: it drafts welcomes for the first
# few dozen and records the rest quietly with one summary, instead of one message each.
FLOOD = 50


@dataclass
class SourceState:
    baseline_done: bool
    cursor: str | None
    last_reconciled_at: datetime | None
    recheck_due: bool = False  # a mass drop waits for its next re-check

    def reconcile_due(self, now: datetime, every: timedelta) -> bool:
        """Time for a full list: the first one, the regular one, or a mass drop's
        re-check (15 minutes, 1 hour, 4 hours… after the drop, not the next regular one)."""
        if not self.baseline_done or self.last_reconciled_at is None or self.recheck_due:
            return True
        return now - self.last_reconciled_at >= every


def _account(session, app: App, platform: str) -> Account:
    """The account ``app`` polls on ``platform``: the one it names (an account connected
    by chat, ``AccountApp.account_id``; its owner may have several there), else the
    owner's one account on the platform."""
    owner = session.get(Owner, app.owner_id)
    repo.scope_account(session, getattr(app, "account_id", None))
    return repo.get_or_create_account(session, owner=owner, platform=platform)


def load_state(app: App, platform: str) -> SourceState:
    """The state as stored; or as the app already read it (a connected account's app
    reads it with its claim, ``bot/connected.py``, and forgets it once it dispatches)."""
    known = getattr(app, "known_state", None)
    remembered = known(platform) if known is not None else None
    if remembered is not None:
        return remembered
    with session_scope(app.engine) as session:
        account = _account(session, app, platform)
        recheck = store.recheck_due(session, owner=session.get_one(Owner, app.owner_id),
                                    account=account, now=app.clock())
        return SourceState(account.baseline_done, account.cursor, account.last_reconciled_at,
                           recheck_due=recheck)


def connected_handles(app: App, platform: str, kind: str = "follower") -> dict[str, str]:
    """external id → handle of everyone ever connected to the owner's account (any state)."""
    with session_scope(app.engine) as session:
        account = _account(session, app, platform)
        rows = session.exec(
            select(Handle.external_id, Handle.handle)
            .join(Connection, col(Connection.handle_id) == col(Handle.id))
            .where(Connection.account_id == account.id, Connection.kind == kind)
        )
        return {external_id: handle for external_id, handle in rows}


# -- a platform session kept between polls (Bluesky: createSession is limited per account)
SESSION_KEY = "session"


def load_session(app: App, platform: str) -> dict | None:
    """The session stored with the owner's account on ``platform`` (inside its encrypted
    credentials), or None: nothing stored, or no PLNBOT_SECRET_KEY to read it with."""
    vault = vault_from(app.settings)
    if vault is None:
        return None
    with session_scope(app.engine) as session:
        token = _account(session, app, platform).credentials
    if not token:
        return None
    stored = vault.decrypt(token).get(SESSION_KEY)
    return stored if isinstance(stored, dict) else None


def save_session(app: App, platform: str, value: dict | None) -> bool:
    """Store ``value`` (None: forget it) as the session of the owner's account on
    ``platform``, encrypted with its other credentials in one transaction; False when
    there is no PLNBOT_SECRET_KEY (then nothing is stored, ever in plain text)."""
    vault = vault_from(app.settings)
    if vault is None:
        return False
    with session_scope(app.engine) as session:
        account = _account(session, app, platform)
        credentials = vault.decrypt(account.credentials) if account.credentials else {}
        if value is None and SESSION_KEY not in credentials:
            return True
        if value is None:
            credentials.pop(SESSION_KEY)
        else:
            credentials[SESSION_KEY] = value
        account.credentials = vault.encrypt(credentials) if credentials else None
        session.add(account)
    return True
