"""Polling every owner's accounts connected by chat (``connect …``).

Any worker (or the single-owner bot) calls ``ConnectedAccounts.poll_due()`` regularly.
It leases accounts whose ``next_poll_at`` has come (``storage/leases.py``: ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so two workers never poll one account), decrypts each
one's credentials, builds that platform's ordinary source for it (the same code that
polls the environment's accounts, so the rate limits, the quiet first baseline, the
cursor and the reconciliation all work the same), polls it as its owner, and gives it
back with the time of its next poll.

A platform that says an account's request budget is spent (a 429, or a remaining count
of 0 in its rate-limit headers) does not make the worker sleep: the source's waits are
``PollDeferred`` here, the poll stops, and the account row keeps the reset time
(``rate_limited_until``), which every worker's claim respects; the other accounts go on.

A token the platform no longer accepts (revoked, expired) gives its owner one
``source_error`` saying to ``connect`` again, and the account is retried only every
``AUTH_RETRY`` from then on. Tokens that expire are refreshed first when the platform
offers it (``Platform.refreshed``: X rotates the refresh token on every use, so the new
pair is stored before the poll uses it).

Which platforms are polled here, what their credentials stand for and how they are
connected again all come from the platform registry (``bot/platforms.py``).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from bot import platforms
from bot.adapters.state import SourceState
from bot.app import App
from bot.config import Settings
from bot.connecting import ConnectRefused
from bot.context import Clock, utcnow
from bot.events import Event, SourceChecked
from bot.outbox import ChatSurface, worker_id
from bot.vault import Vault, require_vault
from storage import leases
from storage.models import Account, MassDrop, Owner

log = logging.getLogger(__name__)

AUTH_RETRY = timedelta(hours=1)
ACCOUNTS_PER_CLAIM = 50


class NotPolledHere(Exception):
    """A platform whose connected accounts ``ConnectedAccounts`` does not poll."""


class PollDeferred(Exception):
    """The platform's request budget for this account is spent until ``until``: the poll
    stops instead of sleeping (one worker polls thousands of accounts in turn)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"rate limited until {until.isoformat(timespec='seconds')}")
        self.until = until


@dataclass(frozen=True)
class Polled:
    """How a poll ended: whether the credentials still work, and until when the
    platform said this account's budget is spent (None: not spent)."""

    accepted: bool = True
    limited_until: datetime | None = None


def account_settings(settings: Settings, *, owner_ref: str, platform: str, external_id: str,
                     credentials: dict[str, Any]) -> Settings:
    """The process settings as if this one account were the configured one: every
    platform's environment account cleared, then this account's fields set."""
    own = platforms.get(platform).account_settings
    if own is None:
        raise NotPolledHere(f"accounts on {platform} connected by chat are not polled")
    return settings.model_copy(update={**platforms.all_account_fields(),
                                       **own(credentials, external_id),
                                       "owner_ref": owner_ref})


@dataclass(frozen=True)
class Claimed:
    """A leased account as its claim read it, with what its poll reads first: the
    owner's address and when a mass drop on it next wants a re-check (None: no open
    drop). Read for the whole batch in the claim's session, instead of two sessions
    (four queries) per poll."""

    account: Account
    owner_ref: str
    recheck_at: datetime | None = None


class AccountApp(App):
    """An App for one connected account's owner: a refused token is told as a reason to
    ``connect`` again (the source's own text names environment variables).

    It starts from the account row as the claim read it: the source's sync state
    (``bot/adapters/state.py``) is served from it until the first event is dispatched,
    and a poll's ``SourceChecked`` that would store what the row already holds is not
    dispatched at all (no transaction, no commit, nothing to deliver)."""

    # whether the platform refused the credentials, as the poll's last check said (None:
    # no check was made); saves reading it back from the account row
    refused: bool | None = None

    def __init__(self, *, owner_id: int, platform: str, account: Account | None = None,
                 recheck_at: datetime | None = None, **options: Any) -> None:
        self.known_owner_id, self.platform = owner_id, platform
        self.account = account  # the row as claimed; None once an event was dispatched
        # the account polled: every event names it (the owner may have several on one
        # platform), and the source's state, session and cursor are this one's
        self.account_id = account.id if account is not None else None
        self.account_handle = account.handle if account is not None else ""
        self.recheck_at = recheck_at
        super().__init__(**options)

    def known_state(self, platform: str) -> SourceState | None:
        """The source's state as the claim read it, while nothing has changed it since."""
        account = self.account
        if account is None or platform != self.platform:
            return None
        recheck = self.recheck_at is not None and self.recheck_at <= self.clock()
        return SourceState(account.baseline_done, account.cursor, account.last_reconciled_at,
                           recheck_due=recheck)

    async def dispatch(self, event: Event) -> bool:
        self.account = None  # the event may move the cursor: read the state again
        if event.account_id is None and self.account_id is not None:
            event = replace(event, account_id=self.account_id)
        return await super().dispatch(event)

    def changes_nothing(self, event: SourceChecked) -> bool:
        """Whether storing this check would write only what the account row holds
        (``handlers/sources.py``): no problem before or now, the same id, handle and
        follower count, and nothing else dispatched during this poll."""
        account = self.account
        return (account is not None and event.platform == self.platform
                and not event.problem and not account.last_error and event.cursor is None
                and event.account_external_id in ("", account.external_id)
                and event.account_handle in ("", account.handle)
                and event.followers_count in (None, account.followers_count_seen))

    def _ensure_owner(self) -> int:
        """The owner of a connected account exists (the account row refers to it): no
        lookup, which cost a session per poll."""
        self.new_owner = False
        return self.known_owner_id

    async def handle(self, event: Event) -> None:
        if isinstance(event, SourceChecked):
            self.refused = event.problem == "auth"
            if self.refused:
                event = replace(event, text=reconnect_text(self.platform,
                                                           self.account_handle))
            elif self.changes_nothing(event):
                return
        await super().handle(event)


def reconnect_text(platform: str, handle: str = "") -> str:
    """What to do about a refused token; the account is named by its handle (the owner
    may have several on the platform, and ``disconnect`` takes the same name)."""
    known = platforms.get(platform)
    shown = f"@{handle.lstrip('@')}" if handle and platform != "bluesky" else handle
    which = f" {shown}" if shown else ""
    return (f"{known.name} no longer accepts my access to your account{which} (it was "
            f"revoked or has expired), so I cannot see your followers there. Write "
            f"`{known.reconnect or 'connect ' + platform}` to connect it again, or "
            f"`disconnect {platform}{which}` to stop.")


class ConnectedAccounts:
    """Polls connected accounts that are due, across every owner."""

    def __init__(self, *, settings: Settings, engine: Engine, surface: ChatSurface,
                 clock: Clock = utcnow, worker: str | None = None,
                 build_source: Callable[[str, Settings], Any] | None = None,
                 per_claim: int = ACCOUNTS_PER_CLAIM) -> None:
        self.settings, self.engine, self.surface = settings, engine, surface
        self.clock = clock
        self.worker = worker or worker_id(settings.worker_id)
        self.every = timedelta(minutes=settings.poll_minutes)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.build_source = build_source or self._build_source
        self.per_claim = per_claim
        self.stop: asyncio.Event | None = None  # set: stop polling (``poll_due``)

    def _build_source(self, platform: str, settings: Settings) -> Any:
        """The platform's ordinary source, as the environment's account gets it, except
        that a rate-limit wait ends the poll (``_defer``) instead of sleeping."""
        return platforms.get(platform).build_source(settings, clock=self.clock,
                                                    sleep=self._defer)

    async def _defer(self, seconds: float) -> None:
        """The sources' ``sleep``: they wait only for a spent rate limit, which here
        postpones this account's poll to the reset, not every account's."""
        if seconds > 0:
            raise PollDeferred(self.clock() + timedelta(seconds=seconds))

    def claim(self) -> list[Claimed]:
        """Lease a batch of due accounts and read them, in one session."""
        now = self.clock()
        due = or_(col(Account.next_poll_at).is_(None), col(Account.next_poll_at) <= now)
        limit_over = or_(col(Account.rate_limited_until).is_(None),
                         col(Account.rate_limited_until) <= now)
        polled = col(Account.platform).in_(platforms.polled_connected())
        with Session(self.engine, expire_on_commit=False) as session:
            ids = leases.claim(
                session, Account, worker=self.worker, now=now, lease=self.lease,
                where=[polled, col(Account.credentials).is_not(None),
                       col(Account.connected_at).is_not(None), due, limit_over],
                order_by=[col(Account.next_poll_at).asc().nulls_first()], limit=self.per_claim)
            return read_claimed(session, ids) if ids else []

    async def poll_due(self) -> int:
        """Poll every due account, batch by batch; returns how many were polled. When
        ``stop`` is set (SIGTERM) it ends after the account being polled and gives the
        rest of its batch back: with more accounts due than it can poll, this pass would
        otherwise never end."""
        total = 0
        while not self._stopping() and (batch := self.claim()):
            renewed, held = self.clock(), {c.account.id for c in batch}
            with leases.hand_back(self.engine) as giving_back:
                for index, claimed in enumerate(batch):
                    rest = [c.account.id for c in batch[index:] if c.account.id in held]
                    if self._stopping():
                        leases.release(giving_back, Account, rest, worker=self.worker)
                        break
                    if self.clock() - renewed >= self.lease / 2:
                        renewed, held = self.clock(), set(self._renew(giving_back, rest))
                    if claimed.account.id not in held:
                        continue  # taken over while the batch was slow: theirs now
                    await self._poll_and_release(claimed, giving_back)
                    total += 1
        return total

    def _renew(self, session: Session, ids: list[int]) -> list[int]:
        """Extend the leases of the accounts of this batch not yet polled (a batch whose
        platforms answer slowly could otherwise outlast its lease, and another worker
        would poll the same accounts); returns those this worker still holds."""
        return leases.renew(session, Account, ids, worker=self.worker, now=self.clock(),
                            lease=self.lease)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def _poll_and_release(self, claimed: Claimed, giving_back: Session) -> None:
        """Poll, then give the account back with its next poll time (``hand_back``: lost
        in a database crash, the account is polled again once its lease expires, from
        the cursor its arrivals committed)."""
        account_id = claimed.account.id
        next_poll = self.clock() + self.every + self._spread(account_id)
        limited: datetime | None = None
        try:
            polled = await self._poll_claimed(claimed)
            if not polled.accepted:
                next_poll = self.clock() + AUTH_RETRY
            limited = polled.limited_until
        except PollDeferred as deferred:  # cut short: the rest as soon as the limit resets
            log.info("connected account %s: %s; polling it again then", account_id, deferred)
            limited = next_poll = deferred.until
        except Exception:  # one broken account must not stop the others
            log.exception("polling connected account %s failed; retrying next interval",
                          account_id)
        finally:
            leases.release(giving_back, Account, [account_id], worker=self.worker,
                           next_poll_at=next_poll, last_polled_at=self.clock(),
                           rate_limited_until=limited)

    def _spread(self, account_id: int) -> timedelta:
        """Up to a tenth of the interval, fixed per account, so accounts connected at the
        same moment do not stay polled at the same moment forever."""
        return self.every / 10 * (zlib.crc32(str(account_id).encode()) % 1000 / 1000)

    async def poll(self, account_id: int) -> bool:
        """Poll one account as its owner; False when its credentials no longer work."""
        return (await self._poll(account_id)).accepted

    async def _poll(self, account_id: int) -> Polled:
        with Session(self.engine, expire_on_commit=False) as session:
            found = read_claimed(session, [account_id])
        return await self._poll_claimed(found[0]) if found else Polled()

    async def _poll_claimed(self, claimed: Claimed) -> Polled:
        vault = require_vault(self.settings)
        account, owner_ref = claimed.account, claimed.owner_ref
        if account.credentials is None:
            return Polled()
        app = self._app(claimed)
        try:
            credentials = await self._fresh_credentials(account, vault)
        except ConnectRefused as exc:
            await app.handle(SourceChecked(owner_ref=owner_ref, platform=account.platform,
                                           problem="auth", text=str(exc)))
            return Polled(accepted=False)
        settings = account_settings(self.settings, owner_ref=owner_ref,
                                    platform=account.platform,
                                    external_id=account.external_id, credentials=credentials)
        source = self.build_source(account.platform, settings)
        app.settings = settings
        try:
            await source.poll(app)
        finally:
            getattr(source, "close", lambda: None)()
            if hasattr(source, "aclose"):
                await source.aclose()
        accepted = not app.refused if app.refused is not None else \
            self._still_accepted(account.id)
        return Polled(accepted=accepted, limited_until=self._spent_until(source))

    def _spent_until(self, source: Any) -> datetime | None:
        """When the source's last answer said the budget is spent: its reset time."""
        until = getattr(source, "rate_limited_until", lambda: None)()
        return until if until is not None and until > self.clock() else None

    def _app(self, claimed: Claimed) -> AccountApp:
        account = claimed.account
        settings = self.settings.model_copy(update={"owner_ref": claimed.owner_ref})
        return AccountApp(owner_id=account.owner_id, platform=account.platform,
                          account=account, recheck_at=claimed.recheck_at,
                          settings=settings, engine=self.engine, surface=self.surface,
                          clock=self.clock, worker=self.worker)

    async def _fresh_credentials(self, account: Account, vault: Vault) -> dict[str, Any]:
        """The account's credentials; a token near its expiry is refreshed first and the
        new credentials stored at once (X's old refresh token stops working)."""
        credentials = vault.decrypt(account.credentials or "")
        credentials.pop("pending", None)
        fresh = await platforms.get(account.platform).refreshed(self.settings, credentials,
                                                                 now=self.clock())
        if fresh is None:
            return credentials
        with Session(self.engine) as session:
            row = session.get(Account, account.id)
            if row is not None:
                row.credentials = vault.encrypt(fresh)
                session.add(row)
                session.commit()
        return fresh

    def _still_accepted(self, account_id: int) -> bool:
        with Session(self.engine) as session:
            error = session.exec(select(Account.last_error)
                                 .where(Account.id == account_id)).one()
        return not (error or "").startswith("auth:")



def read_claimed(session: Session, ids: list[int]) -> list[Claimed]:
    """The accounts ``ids`` with their owners' addresses and their soonest mass-drop
    re-check, in id order: one query for a whole claimed batch."""
    recheck = (select(func.min(MassDrop.next_check_at))
               .where(MassDrop.account_id == Account.id, MassDrop.owner_id == Account.owner_id,
                      MassDrop.status == "open")
               .correlate(Account).scalar_subquery())
    rows = session.exec(select(Account, Owner.external_ref, recheck)
                        .join(Owner, col(Owner.id) == Account.owner_id)
                        .where(col(Account.id).in_(ids)).order_by(col(Account.id)))
    return [Claimed(account, owner_ref, recheck_at) for account, owner_ref, recheck_at in rows]
