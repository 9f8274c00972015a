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

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from bot import platforms
from bot.app import App
from bot.config import Settings
from bot.connecting import ConnectRefused
from bot.context import Clock, utcnow
from bot.events import Event, SourceChecked
from bot.outbox import ChatSurface, worker_id
from bot.vault import Vault, require_vault
from storage import leases
from storage.models import Account, Owner

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


class AccountApp(App):
    """An App for one connected account's owner: a refused token is told as a reason to
    ``connect`` again (the source's own text names environment variables)."""

    # whether the platform refused the credentials, as the poll's last check said (None:
    # no check was made); saves reading it back from the account row
    refused: bool | None = None

    def __init__(self, *, owner_id: int, platform: str, **options: Any) -> None:
        self.known_owner_id, self.platform = owner_id, platform
        super().__init__(**options)

    def _ensure_owner(self) -> int:
        """The owner of a connected account exists (the account row refers to it): no
        lookup, which cost a session per poll."""
        self.new_owner = False
        return self.known_owner_id

    async def handle(self, event: Event) -> None:
        if isinstance(event, SourceChecked):
            self.refused = event.problem == "auth"
            if self.refused:
                event = replace(event, text=reconnect_text(self.platform))
        await super().handle(event)


def reconnect_text(platform: str) -> str:
    known = platforms.get(platform)
    return (f"{known.name} no longer accepts my access to your account (it was revoked "
            f"or has expired), so I cannot see your followers there. Write "
            f"`{known.reconnect or 'connect ' + platform}` to connect it again, or "
            f"`disconnect {platform}` to stop.")


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

    def claim(self) -> list[int]:
        now = self.clock()
        due = or_(col(Account.next_poll_at).is_(None), col(Account.next_poll_at) <= now)
        limit_over = or_(col(Account.rate_limited_until).is_(None),
                         col(Account.rate_limited_until) <= now)
        polled = col(Account.platform).in_(platforms.polled_connected())
        with Session(self.engine) as session:
            return leases.claim(
                session, Account, worker=self.worker, now=now, lease=self.lease,
                where=[polled, col(Account.credentials).is_not(None),
                       col(Account.connected_at).is_not(None), due, limit_over],
                order_by=[col(Account.next_poll_at).asc().nulls_first()], limit=self.per_claim)

    async def poll_due(self) -> int:
        """Poll every due account, batch by batch; returns how many were polled. When
        ``stop`` is set (SIGTERM) it ends after the account being polled and gives the
        rest of its batch back: with more accounts due than it can poll, this pass would
        otherwise never end."""
        total = 0
        while not self._stopping() and (ids := self.claim()):
            for index, account_id in enumerate(ids):
                if self._stopping():
                    with Session(self.engine) as session:
                        leases.release(session, Account, ids[index:], worker=self.worker)
                    break
                await self._poll_and_release(account_id)
                total += 1
        return total

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def _poll_and_release(self, account_id: int) -> None:
        next_poll = self.clock() + self.every + self._spread(account_id)
        limited: datetime | None = None
        try:
            polled = await self._poll(account_id)
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
            with Session(self.engine) as session:
                leases.release(session, Account, [account_id], worker=self.worker,
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
        vault = require_vault(self.settings)
        with Session(self.engine) as session:
            found = session.exec(select(Account, Owner.external_ref)
                                 .join(Owner, col(Owner.id) == Account.owner_id)
                                 .where(Account.id == account_id)).first()
        if found is None or found[0].credentials is None:
            return Polled()
        account, owner_ref = found
        app = self._app(owner_ref, account)
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
            self._still_accepted(account_id)
        return Polled(accepted=accepted, limited_until=self._spent_until(source))

    def _spent_until(self, source: Any) -> datetime | None:
        """When the source's last answer said the budget is spent: its reset time."""
        until = getattr(source, "rate_limited_until", lambda: None)()
        return until if until is not None and until > self.clock() else None

    def _app(self, owner_ref: str, account: Account) -> AccountApp:
        settings = self.settings.model_copy(update={"owner_ref": owner_ref})
        return AccountApp(owner_id=account.owner_id, platform=account.platform,
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

