"""X (Twitter) as a connection source: tweepy's AsyncClient on the X API v2.

One poll costs one followers request in the usual case: ``GET /2/users/:id/followers``
lists the newest followers first, so paging stops at the first follower already stored.
Who left is only visible in the complete list, which costs one request per 1,000
followers out of 15 per 15 minutes, so a full reconciliation runs only when X's follower
count disagrees with what the bot expects, on the first sync, and on a slow schedule
(``PLNBOT_RECONCILE_HOURS``).

Rate limits are read from ``x-rate-limit-*`` headers and waited out rather than hit;
platform problems (no API access, a rejected token, X being down) reach the owner once
as a ``SourceChecked`` problem. Welcomes are never sent through the API: X forbids
automated welcome DMs, so drafts carry a compose link instead (see handlers.drafting).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import tweepy
from sqlmodel import Session, col, select
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tweepy.asynchronous import AsyncClient

from bot.adapters.state import FLOOD
from bot.adapters.translate import read_each
from bot.config import ConfigError
from bot.context import utcnow
from bot.events import (
    NewConnection,
    Profile,
    ProfilesUnreadable,
    SnapshotReceived,
    SourceChecked,
    Unreadable,
)
from storage import connections as store
from storage.models import Account, Connection, Handle, Owner

log = logging.getLogger(__name__)

USER_FIELDS = [
    "description", "location", "url", "entities", "public_metrics", "created_at",
    "profile_image_url", "verified",
]
PAGE_SIZE = 1000
WINDOW = timedelta(minutes=15)
BLOCKED_RETRY = timedelta(hours=1)  # after a token or access-level problem
REQUEST_TIMEOUT = 30.0
ARCHIVE_HINT = (
    "Without API access you can still bring in your network: download your X data archive "
    "(Settings → Your account → Download an archive of your data) and run "
    "`plnbot import x-archive PATH`."
)

Sleep = Callable[[float], Awaitable[None]]


class XProblem(Exception):
    """A problem only the owner can fix (or wait out); ``code`` is stable, ``text`` tells."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class RateLimited(Exception):
    """The next request would exceed X's window by more than this poll is allowed to wait."""


class RetryAfterLimit(Exception):
    """X answered 429: retry once the window has reset."""


class UnreadableAnswer(Exception):
    """X answered, but the body is not JSON (an error page from a proxy, a page cut off)."""


TRANSIENT = (tweepy.TwitterServerError, aiohttp.ClientError, TimeoutError, RetryAfterLimit,
             UnreadableAnswer)


def build_source(settings: Any, *, clock: Callable[[], datetime] = utcnow,
                 sleep: Sleep = asyncio.sleep) -> XSource | None:
    """The X source when a token is configured, else None (the same keywords as every
    platform's builder: ``Platform.build_source``)."""
    bearer, user = settings.x_bearer_token, settings.x_user_access_token
    bearer = bearer.get_secret_value() if bearer else ""
    user = user.get_secret_value() if user else ""
    if not (bearer or user):
        return None
    if bearer and not user and not settings.x_user_id:
        raise ConfigError(
            "X_BEARER_TOKEN is set but X_USER_ID is not: an app-only token cannot tell "
            "whose followers to read. Set X_USER_ID to your numeric X user id (or also set "
            "X_USER_ACCESS_TOKEN) — see config.example.env"
        )
    return XSource(settings, bearer_token=bearer, user_token=user, clock=clock, sleep=sleep)


class RateLimiter:
    """X's per-endpoint windows as its headers report them; waits instead of a 429."""

    def __init__(self, *, clock: Callable[[], datetime], sleep: Sleep, max_wait: float):
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self.windows: dict[str, tuple[int, float]] = {}

    async def before(self, endpoint: str) -> None:
        remaining, reset = self.windows.get(endpoint, (1, 0.0))
        if remaining > 0:
            return
        delay = reset - self.clock().timestamp() + 1
        if delay <= 0:
            return
        if delay > self.max_wait:
            raise RateLimited(f"{endpoint}: window resets in {delay:.0f}s")
        log.info("X rate limit for %s reached; waiting %.0f seconds", endpoint, delay)
        await self.sleep(delay)
        self.windows.pop(endpoint, None)

    def update(self, endpoint: str, headers: Any) -> None:
        try:
            remaining = int(headers["x-rate-limit-remaining"])
            reset = float(headers["x-rate-limit-reset"])
        except (KeyError, TypeError, ValueError):
            return
        self.windows[endpoint] = (remaining, reset)

    def spent_until(self) -> datetime | None:
        """When the last of the windows X said are used up resets (None: none is), at
        most one window away: a poller of many accounts keeps it on the account row and
        polls another account meanwhile (``bot/connected.py``)."""
        now = self.clock().timestamp()
        resets = [reset for remaining, reset in self.windows.values()
                  if remaining <= 0 and reset > now]
        if not resets:
            return None
        latest = min(max(resets) + 1, now + WINDOW.total_seconds())
        return datetime.fromtimestamp(latest, tz=UTC)

    def exhausted(self, endpoint: str, headers: Any) -> None:
        """A 429: nothing left until the reset X names (or one window from now)."""
        try:
            reset = float(headers["x-rate-limit-reset"])
        except (KeyError, TypeError, ValueError):
            reset = (self.clock() + WINDOW).timestamp()
        self.windows[endpoint] = (0, reset)


class XApi:
    """One token's view of the API: rate limits, retries, and errors the owner can read."""

    def __init__(self, client: AsyncClient, *, token_var: str, limiter: RateLimiter,
                 sleep: Sleep, attempts: int = 4) -> None:
        self.client = client
        self.token_var = token_var
        self.limiter = limiter
        self.sleep = sleep
        self.attempts = attempts

    async def me(self) -> dict[str, Any]:
        body = await self.call("users/me", self.client.get_me, user_auth=False,
                               user_fields=["public_metrics"])
        return owner_data(body, "the account of X_USER_ACCESS_TOKEN")

    async def user(self, user_id: str) -> dict[str, Any]:
        body = await self.call("users/:id", self.client.get_user, id=user_id,
                               user_fields=["public_metrics"])
        return owner_data(body, f"the account {user_id} (X_USER_ID)")

    async def followers_page(self, user_id: str, token: str | None) -> FollowersPage:
        params: dict[str, Any] = {"max_results": PAGE_SIZE, "user_fields": USER_FIELDS}
        if token:
            params["pagination_token"] = token
        body = await self.call("users/:id/followers", self.client.get_users_followers,
                               user_id, **params)
        return FollowersPage.read(body)

    async def call(self, endpoint: str, method, *args, **params) -> dict[str, Any]:
        """Retry what is transient with back-off; the last failure is an XProblem."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts), sleep=self.sleep, reraise=True,
                wait=wait_exponential(multiplier=2, max=60),
                retry=retry_if_exception_type(TRANSIENT),
            ):
                with attempt:
                    return await self._once(endpoint, method, *args, **params)
        except TRANSIENT as exc:
            raise XProblem("server", server_problem_text(exc, self.attempts)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, endpoint: str, method, *args, **params) -> dict[str, Any]:
        await self.limiter.before(endpoint)
        try:
            response = await method(*args, **params)
        except tweepy.TooManyRequests as exc:
            self.limiter.exhausted(endpoint, exc.response.headers)
            raise RetryAfterLimit(endpoint) from exc
        except tweepy.Unauthorized as exc:
            raise XProblem("auth", token_rejected_text(self.token_var)) from exc
        except tweepy.Forbidden as exc:
            raise XProblem(*await forbidden_problem(exc, self.token_var)) from exc
        self.limiter.update(endpoint, response.headers)
        try:
            body = await response.json()
        except ValueError as exc:  # only the body: a bug of ours is not X being down
            raise UnreadableAnswer(endpoint) from exc
        if not isinstance(body, dict):
            raise UnreadableAnswer(endpoint)
        return body


@dataclass
class FollowersPage:
    """One page of followers, each read on its own: an entry X sent that is no user
    object (an id that is not 1–20 digits, a number for a user) is ``unreadable``
    and costs nobody else on the page."""

    profiles: list[Profile]
    unreadable: list[Unreadable]
    next_token: str | None

    @classmethod
    def read(cls, body: dict[str, Any]) -> FollowersPage:
        users, meta = body.get("data") or [], body.get("meta") or {}
        token = meta.get("next_token") if isinstance(meta, dict) else None
        if not isinstance(users, list) or not isinstance(token, str | None):
            raise XProblem("server", "X sent a page of followers in a shape it does not "
                                     "document, so nobody on it could be read. I'll try "
                                     "again at the next poll.")
        profiles, unreadable = read_each("x", users)
        return cls(profiles=profiles, unreadable=unreadable, next_token=token or None)


def owner_data(body: dict[str, Any], which: str) -> dict[str, Any]:
    """The owner's user object; X answers 200 with only ``errors`` for a missing account."""
    if isinstance(body.get("data"), dict) and body["data"].get("id"):
        return body["data"]
    errors = body.get("errors") or [{}]
    detail = errors[0].get("detail") or errors[0].get("title") or "no such account"
    text = (f"X could not find {which}: {detail}. Check X_USER_ID (your numeric X user id) "
            "in your .env and restart plnbot.")
    raise XProblem("config", text)


def token_rejected_text(token_var: str) -> str:
    text = (f"X rejected the token in {token_var} (401 Unauthorized): it is wrong, revoked "
            f"or expired. Put a fresh one in {token_var} in your .env and restart plnbot.")
    if token_var == "X_USER_ACCESS_TOKEN":
        text += (" OAuth 2.0 user tokens expire after two hours; for unattended polling use "
                 "X_BEARER_TOKEN with X_USER_ID.")
    return text


async def forbidden_problem(exc: tweepy.Forbidden, token_var: str) -> tuple[str, str]:
    """A 403 is nearly always the API tier; otherwise pass on what X said."""
    try:
        body = await exc.response.json(content_type=None)
    except Exception:  # the body is only a hint; the status alone is enough
        body = {}
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("detail") or "; ".join(exc.api_messages) or "")
    if body.get("reason") == "client-not-enrolled" or 453 in exc.api_codes or not detail:
        return "tier", (
            "X refused to list your followers (403 Forbidden): the API access level of the "
            f"app behind {token_var} does not include the followers endpoint, which X sells "
            "only with its paid tiers (Pro or Enterprise at the time of writing). I won't "
            "keep asking. " + ARCHIVE_HINT
        )
    return "forbidden", f"X refused the request (403 Forbidden): {detail[:300]} " + ARCHIVE_HINT


def server_problem_text(exc: BaseException, attempts: int) -> str:
    if isinstance(exc, RetryAfterLimit):
        what = "kept answering 429 Too Many Requests"
    elif isinstance(exc, tweepy.HTTPException):
        status = getattr(exc.response, "status", "?")
        what = f"answered {status} {getattr(exc.response, 'reason', '') or ''}".rstrip()
    elif isinstance(exc, TimeoutError):
        what = "did not answer in time"
    elif isinstance(exc, UnreadableAnswer):
        what = "sent an answer that could not be read (not JSON, or cut off)"
    else:
        what = f"could not be reached ({type(exc).__name__})"
    return (f"X's API {what}, {attempts} times in a row. Nothing was lost: I'll keep trying "
            "at every poll and tell you when it works again.")


@dataclass
class AccountState:
    """What the bot stored about the owner's X account (read outside any transaction)."""

    account_id: int | None = None
    external_id: str = ""
    handle: str = ""
    baseline_done: bool = False
    followers_count_seen: int | None = None
    last_reconciled_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    recheck_due: bool = False  # a mass drop waits for its next re-check

    @property
    def problem(self) -> str | None:
        return self.last_error.split(":", 1)[0] if self.last_error else None


class XSource:
    platform = "x"

    def __init__(self, settings, *, bearer_token: str = "", user_token: str = "",
                 clock: Callable[[], datetime] = utcnow, sleep: Sleep = asyncio.sleep,
                 max_wait: float = WINDOW.total_seconds() + 5) -> None:
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(clock=clock, sleep=sleep, max_wait=max_wait)
        self.apis = {
            var: XApi(AsyncClient(bearer_token=token, return_type=aiohttp.ClientResponse),
                      token_var=var, limiter=self.limiter, sleep=sleep)
            for var, token in (("X_BEARER_TOKEN", bearer_token),
                               ("X_USER_ACCESS_TOKEN", user_token)) if token
        }
        # App-only requests have their own (per-app) limits and never expire.
        self.api = self.apis.get("X_BEARER_TOKEN") or self.apis["X_USER_ACCESS_TOKEN"]
        self.polled = False

    def rate_limited_until(self) -> datetime | None:
        """Until when X said a window this account's polls use is spent (None: none is)."""
        return self.limiter.spent_until()

    async def poll(self, app) -> None:
        state = load_state(app)
        if self._holding_off(state):
            log.info("X: not polling until %s (%s)",
                     state.last_error_at and state.last_error_at + BLOCKED_RETRY,
                     state.problem)
            return
        self.polled = True
        async with self._http_session():
            try:
                await self._poll(app, state)
            except XProblem as problem:
                log.warning("X poll stopped: %s", problem.code)
                await self._checked(app, state, problem=problem)
            except RateLimited as exc:
                log.info("X poll postponed to the next one: %s", exc)

    def _holding_off(self, state: AccountState) -> bool:
        """After a token or tier problem, retry hourly (and at every restart), not every poll."""
        if not self.polled or state.problem not in ("tier", "auth", "forbidden", "config"):
            return False
        return state.last_error_at is not None and self.clock() < (
            state.last_error_at + BLOCKED_RETRY)

    @asynccontextmanager
    async def _http_session(self) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for api in self.apis.values():
                api.client.session = session
            try:
                yield
            finally:
                for api in self.apis.values():
                    api.client.session = None

    async def _poll(self, app, state: AccountState) -> None:
        me = await self._owner_account(state)
        state.external_id, state.handle = str(me["id"]), me.get("username") or state.handle
        count = (me.get("public_metrics") or {}).get("followers_count")
        if self._reconciliation_due(state):
            why = "mass-drop re-check" if state.recheck_due else "scheduled"
            await self.reconcile(app, state, count=count, why=why)
            return
        new, unreadable = await self._new_followers(app, state)
        if count is not None and not counts_agree(count, state.followers_count_seen, len(new),
                                                  len(unreadable)):
            await self.reconcile(app, state, count=count, why="count mismatch")
            return
        await self._arrivals(app, state, new, unreadable)
        await self._checked(app, state, followers_count=count)

    async def _arrivals(self, app, state: AccountState, new: list[Profile],
                        unreadable: list[Unreadable]) -> None:
        """Each arrival on its own; a flood as one partial list (drafts capped, summarised).
        Followers that could not be read are told (once) and skipped."""
        if len(new) > FLOOD:
            await app.handle(SnapshotReceived(
                owner_ref=app.settings.owner_ref, platform="x", profiles=new, complete=False,
                account_external_id=state.external_id, account_handle=state.handle,
                unreadable=unreadable,
            ))
            return
        if unreadable:
            await app.handle(ProfilesUnreadable(owner_ref=app.settings.owner_ref,
                                                platform="x", entries=unreadable))
        await app.handle_arrivals(  # oldest first, as they arrived; written together
            NewConnection(owner_ref=app.settings.owner_ref, profile=profile)
            for profile in reversed(new))

    async def _owner_account(self, state: AccountState) -> dict[str, Any]:
        user_id = self.settings.x_user_id or state.external_id
        if user_id:
            return await self.api.user(user_id)
        return await self.apis["X_USER_ACCESS_TOKEN"].me()

    def _reconciliation_due(self, state: AccountState) -> bool:
        if not state.baseline_done or state.last_reconciled_at is None or state.recheck_due:
            return True
        every = timedelta(hours=self.settings.reconcile_hours)
        return self.clock() - state.last_reconciled_at >= every

    async def _new_followers(self, app, state: AccountState,
                             ) -> tuple[list[Profile], list[Unreadable]]:
        """Followers newer than the newest one already stored (newest first), and those
        among them that could not be read. An unreadable one never stops the paging
        (it is never stored, so it would stop every later poll in the same place)."""
        new: list[Profile] = []
        unreadable: list[Unreadable] = []
        token = None
        while True:
            page = await self.api.followers_page(state.external_id, token)
            known = known_followers(app, state, [p.external_id for p in page.profiles])
            unreadable += page.unreadable
            for profile in page.profiles:
                if profile.external_id in known:
                    return new, unreadable
                new.append(profile)
            token = page.next_token
            if not token:
                return new, unreadable

    async def reconcile(self, app, state: AccountState, *, count: int | None, why: str) -> None:
        """Every follower, page by page; an interruption still adds, but never removes."""
        log.info("X: full follower reconciliation (%s)", why)
        profiles: list[Profile] = []
        unreadable: list[Unreadable] = []
        token, problem = None, None
        try:
            while True:
                page = await self.api.followers_page(state.external_id, token)
                profiles += page.profiles
                unreadable += page.unreadable
                token = page.next_token
                if not token:
                    break
        except (XProblem, RateLimited) as exc:
            if not profiles:
                raise
            problem = exc if isinstance(exc, XProblem) else None
            log.info("X reconciliation interrupted after %d followers: %s", len(profiles), exc)
        complete = token is None
        await app.handle(SnapshotReceived(
            owner_ref=app.settings.owner_ref, platform="x", profiles=profiles, complete=complete,
            account_external_id=state.external_id, account_handle=state.handle,
            summary=not state.baseline_done,  # the baseline is told; later syncs stay quiet
            unreadable=unreadable,
        ))
        await self._checked(app, state, followers_count=count if complete else None,
                            problem=problem)

    async def _checked(self, app, state: AccountState, *, followers_count: int | None = None,
                       problem: XProblem | None = None) -> None:
        await app.handle(SourceChecked(
            owner_ref=app.settings.owner_ref, platform="x",
            account_external_id=state.external_id, account_handle=state.handle,
            followers_count=followers_count, problem=problem.code if problem else None,
            text=problem.text if problem else "",
        ))


def counts_agree(count: int, seen: int | None, new: int, unreadable: int) -> bool:
    """Whether X's follower count is what the poll explains: everyone new, plus perhaps
    the followers that could not be read (new, or fetched again at every poll since they
    are never stored). Anything else means someone left: reconcile."""
    grown = count - (seen or 0)
    return new <= grown <= new + unreadable


def load_state(app) -> AccountState:
    with Session(app.engine) as session:
        account = _polled_account(session, app)
        if account is None:
            return AccountState()
        return AccountState(
            account_id=account.id, external_id=account.external_id, handle=account.handle,
            baseline_done=account.baseline_done,
            followers_count_seen=account.followers_count_seen,
            last_reconciled_at=account.last_reconciled_at, last_error=account.last_error,
            last_error_at=account.last_error_at,
            recheck_due=store.recheck_due(session, owner=session.get_one(Owner, app.owner_id),
                                          account=account, now=app.clock()),
        )


def _polled_account(session: Session, app) -> Account | None:
    """The X account ``app`` polls: the one it names (connected by chat: its owner may
    have several), else the owner's one X account."""
    account_id = getattr(app, "account_id", None)
    if account_id is not None:
        account = session.get(Account, account_id)
        return account if account is not None and account.owner_id == app.owner_id else None
    return session.exec(
        select(Account).where(Account.owner_id == app.owner_id, Account.platform == "x")
        .order_by(col(Account.connected_at).is_not(None), col(Account.id))
    ).first()


def known_followers(app, state: AccountState, ids: list[str]) -> set[str]:
    """Which of ``ids`` are stored as active followers of the owner's X account."""
    if state.account_id is None or not ids:
        return set()
    with Session(app.engine) as session:
        return set(session.exec(
            select(Handle.external_id)
            .join(Connection, col(Connection.handle_id) == col(Handle.id))
            .where(Connection.account_id == state.account_id, Connection.kind == "follower",
                   Connection.state == "active", col(Handle.external_id).in_(ids))
        ))
