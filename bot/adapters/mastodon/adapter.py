"""Mastodon as a connection source and as the way approved welcomes go out (Mastodon.py).

- New followers come from ``notifications(types=[...])`` after the stored ``since_id``
  (``Account.cursor``), and with ``MASTODON_STREAMING=true`` also from the user stream;
  when the stream drops, polling takes over again.
- The follower list is reconciled page by page (``account_followers`` + ``fetch_next``)
  on the first sync (the quiet baseline) and every ``PLNBOT_RECONCILE_HOURS``; the
  sync engine (handlers/connections.py) turns the list into arrivals and losses.
- ``severed_relationships`` become ``ConnectionsSevered`` (the platform cut them, the
  people did not leave); ``follow_request`` becomes ``FollowRequested``.
- An approved welcome is a direct status that mentions the person.

Mastodon.py is synchronous, so every call runs in a worker thread; it is told to
*throw* on 429 and the waiting is done here, through an injectable clock and sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import requests
from mastodon import Mastodon, StreamListener
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIOError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from bot.adapters import state, translate
from bot.adapters.limits import Backoff, RateLimiter, Sleep
from bot.adapters.translate import SnapshotError, mastodon_profile, read_one
from bot.config import ConfigError, Settings, secret
from bot.context import Clock, utcnow
from bot.events import (
    ConnectionsSevered,
    CursorMoved,
    Event,
    FollowRequested,
    NewConnection,
    Profile,
    ProfilesUnreadable,
    SnapshotReceived,
    SourceChecked,
    SourceCursor,
    Unreadable,
)
from bot.ports import SendRefused, SendUncertain, WelcomeSender
from handlers.untrusted import clean_id

if TYPE_CHECKING:
    from storage.models import Handle

log = logging.getLogger(__name__)

PLATFORM = "mastodon"
SCOPES = "read:accounts read:follows read:notifications write:statuses"
NOTIFICATION_TYPES = ["follow", "follow_request", "severed_relationships"]
UNPLACED = ("its notification has no readable id, so it was left out; the next "
            "reconciliation of your followers finds them")
NOTIFICATION_PAGE = 80
FOLLOWER_PAGE = 80
MAX_PAGES = 1000
REQUEST_TIMEOUT = 30.0  # seconds per HTTP request; a hung server is a failed poll
RATE_LIMIT_RETRIES = 3
DEFAULT_MAX_CHARACTERS = 500
URL_LENGTH = 23  # Mastodon counts every link as 23 characters


class MastodonClient:
    """One Mastodon.py client: calls off the event loop, within the rate limits."""

    def __init__(self, settings: Settings, *, clock: Clock = utcnow, sleep: Sleep = asyncio.sleep,
                 http: requests.Session | None = None) -> None:
        self.base_url = (settings.mastodon_base_url or "").rstrip("/")
        self.limiter = RateLimiter(prefix="x-ratelimit-", clock=clock, sleep=sleep)
        http = http or requests.Session()
        http.hooks["response"].append(self._observe)
        self.api = Mastodon(
            access_token=secret(settings.mastodon_access_token),
            api_base_url=self.base_url, ratelimit_method="throw", session=http,
            request_timeout=REQUEST_TIMEOUT, version_check_mode="none", user_agent="plnbot",
        )
        self.me: dict[str, Any] | None = None
        self.domain: str = urlparse(str(self.api.api_base_url)).netloc
        self._max_characters: int | None = None

    def _observe(self, response: requests.Response, *args, **kwargs) -> None:
        self.limiter.observe(response.headers)

    async def call(self, func: Callable, *args, **kwargs):
        """``func(*args, **kwargs)`` in a thread; a 429 waits for the window and retries."""
        for attempt in range(RATE_LIMIT_RETRIES):
            await self.limiter.wait_if_spent()
            try:
                return await asyncio.to_thread(func, *args, **kwargs)
            except MastodonRatelimitError:
                if attempt == RATE_LIMIT_RETRIES - 1:
                    raise
                await self.limiter.wait_after_refusal()
        raise AssertionError("unreachable")  # pragma: no cover

    async def ensure_me(self) -> dict[str, Any]:
        """The owner's own account (and the instance's domain and limits), fetched once."""
        if self.me is None:
            me = plain(await self.call(self.api.account_verify_credentials))
            await self._load_instance()
            self.me = me
        return self.me

    async def _load_instance(self) -> None:
        try:
            instance = plain(await self.call(self.api.instance_v1))
        except (MastodonNotFoundError, MastodonServerError) as exc:
            log.info("instance information unavailable (%s); assuming 500 characters",
                     type(exc).__name__)
            self._max_characters = DEFAULT_MAX_CHARACTERS
            return
        self.domain = str(instance.get("uri") or self.domain).split("//")[-1].strip("/")
        self._max_characters = max_characters(instance)

    async def max_characters(self) -> int:
        if self._max_characters is None:
            await self._load_instance()
        return self._max_characters or DEFAULT_MAX_CHARACTERS

    def own_handle(self) -> str:
        return self.profile(self.me).handle if self.me else ""

    def profile(self, account: dict[str, Any]) -> Profile:
        """A Profile whose handle is always the full ``user@domain`` address."""
        account = plain(account)
        if not isinstance(account, dict):
            raise SnapshotError("it is not an account object")
        acct = account.get("acct") or account.get("username") or ""
        if acct and isinstance(acct, str) and "@" not in acct:
            account["acct"] = f"{acct}@{self.domain}"
        return mastodon_profile(account)

    def read(self, account: Any) -> Profile | Unreadable:
        """One account as a Profile, or what can be said about it when it cannot be
        read (one such account never fails the poll or the list it came in)."""
        return read_one(PLATFORM, plain(account), self.profile)

    def read_all(self, accounts: list[Any]) -> tuple[list[Profile], list[Unreadable]]:
        read = [self.read(account) for account in accounts]
        return ([r for r in read if isinstance(r, Profile)],
                [r for r in read if isinstance(r, Unreadable)])


def plain(value: Any) -> Any:
    """Mastodon.py's typed results as plain JSON data (dates as ISO strings)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def max_characters(instance: dict[str, Any]) -> int:
    """``configuration.statuses.max_characters`` (Mastodon 3.4+), else forks' fields, else 500."""
    statuses = ((instance.get("configuration") or {}).get("statuses") or {})
    value = statuses.get("max_characters") or instance.get("max_toot_chars")
    try:
        return int(value) if value else DEFAULT_MAX_CHARACTERS
    except (TypeError, ValueError):
        return DEFAULT_MAX_CHARACTERS


def newer(a: str, b: str | None) -> bool:
    """Mastodon ids are numeric strings that grow with time."""
    if b is None:
        return True
    return (len(a), a) > (len(b), b)


def describe_failure(exc: Exception, base_url: str) -> tuple[str, str]:
    """(a stable problem code, the message for the owner) for a failed call."""
    status = exc.args[1] if isinstance(exc, MastodonAPIError) and len(exc.args) > 1 else None
    if isinstance(exc, MastodonUnauthorizedError) or status == 401:
        return "auth", (f"Mastodon refused the access token (401 Unauthorized). Create a new "
                        f"token (Preferences → Development → New application, scopes "
                        f"{SCOPES}) and set MASTODON_ACCESS_TOKEN.")
    if status == 403:
        return "auth", (f"Mastodon's access token lacks a permission (403 Forbidden). Give the "
                        f"application the scopes {SCOPES} and set the new "
                        f"MASTODON_ACCESS_TOKEN.")
    if isinstance(exc, MastodonNotFoundError):
        return "config", (f"{base_url} does not answer like a Mastodon instance (404). Check "
                          f"MASTODON_BASE_URL.")
    if isinstance(exc, MastodonRatelimitError):
        return "rate", ("Mastodon keeps refusing requests as rate limited; the bot waits and "
                        "retries later.")
    reason = f"HTTP {status}" if status else type(exc).__name__
    return "server", (f"Cannot reach your Mastodon instance at {base_url} ({reason}). The bot "
                      f"keeps retrying with increasing pauses; check MASTODON_BASE_URL if this "
                      f"lasts.")


def notification_time(notification: dict[str, Any], fallback: datetime) -> datetime:
    try:
        at = datetime.fromisoformat(str(notification.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class _Listener(StreamListener):
    """Hands streamed notifications to the event loop (the stream runs in its own thread)."""

    def __init__(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.deliver = deliver

    def on_notification(self, notification) -> None:
        self.deliver(plain(notification))

    def on_abort(self, err) -> None:
        log.warning("the Mastodon stream dropped (%s); polling takes over", type(err).__name__)


class MastodonSource:
    """Polls (and optionally streams) the owner's Mastodon account into events."""

    platform = PLATFORM

    def __init__(self, settings: Settings, client: MastodonClient) -> None:
        self.settings = settings
        self.client = client
        self.sender = MastodonSender(client)
        self.backoff = Backoff()
        self.stream = None
        self._lock = asyncio.Lock()

    # -- the poll -----------------------------------------------------------------------
    def rate_limited_until(self) -> datetime | None:
        """Until when the last answer said the request budget is spent (None: it is not);
        a poller of many accounts remembers it instead of waiting (bot/connected.py)."""
        return self.client.limiter.spent_until()

    async def poll(self, app) -> None:
        if not self.backoff.ready(app.clock()):
            return
        try:
            async with self._lock:
                await self._poll(app)
        except MastodonError as exc:
            await self._failed(app, exc)
            return
        self.backoff.succeeded()
        me = self.client.me or {}
        await app.handle(SourceChecked(
            owner_ref=app.settings.owner_ref, platform=PLATFORM,
            account_external_id=str(me.get("id", "")), account_handle=self.client.own_handle(),
            followers_count=me.get("followers_count")))

    async def _poll(self, app) -> None:
        me = await self.client.ensure_me()
        current = state.load_state(app, PLATFORM)
        if current.cursor is None:
            newest = await self._newest_notification_id()
            await app.handle(CursorMoved(owner_ref=app.settings.owner_ref,
                                         cursor=SourceCursor(PLATFORM, newest or "0")))
        elif not self.streaming():
            await self._catch_up(app, current.cursor)
        every = timedelta(hours=self.settings.reconcile_hours)
        if current.reconcile_due(app.clock(), every):
            await self.reconcile(app, me)
        if self.settings.mastodon_streaming and not self._stream_thread_alive():
            await self._start_stream(app)

    async def _failed(self, app, exc: MastodonError) -> None:
        code, message = describe_failure(exc, self.client.base_url)
        delay = self.backoff.failed(app.clock())
        log.warning("Mastodon poll failed (%s); next attempt in %s", type(exc).__name__, delay)
        await app.handle(SourceChecked(owner_ref=app.settings.owner_ref, platform=PLATFORM,
                                       problem=code, text=message))

    # -- notifications ------------------------------------------------------------------
    async def _newest_notification_id(self) -> str | None:
        page = await self.client.call(self.client.api.notifications, types=NOTIFICATION_TYPES,
                                      limit=1)
        placed, _ = placeable(plain(page) if isinstance(page, list) else [])
        return placed[0]["id"] if placed else None

    async def fetch_since(self, cursor: str) -> tuple[list[dict[str, Any]], list[Unreadable]]:
        """Every notification newer than ``cursor``, oldest first, and those on the
        pages read that cannot be placed (``placeable``).

        Mastodon answers ``since_id`` with the newest page; ``fetch_next`` walks back
        (and drops ``since_id``), so the walk stops at the first id already seen.
        """
        found: list[dict[str, Any]] = []
        unplaced: list[Unreadable] = []
        page = await self.client.call(self.client.api.notifications, types=NOTIFICATION_TYPES,
                                      since_id=cursor, limit=NOTIFICATION_PAGE)
        for _ in range(MAX_PAGES):
            items, left_out = placeable(plain(page) if isinstance(page, list) else [])
            unplaced += left_out
            fresh = [n for n in items if newer(n["id"], cursor)]
            found.extend(fresh)
            if not items or len(fresh) < len(items) or not _has_next(page):
                break
            page = await self.client.call(self.client.api.fetch_next, page)
        return sorted(found, key=lambda n: (len(n["id"]), n["id"])), unplaced

    async def _catch_up(self, app, cursor: str) -> None:
        notifications, unplaced = await self.fetch_since(cursor)
        if unplaced:  # told once (keyed); the cursor cannot move past what has no place
            await app.handle(ProfilesUnreadable(owner_ref=app.settings.owner_ref,
                                                platform=PLATFORM, entries=unplaced))
        follows = [n for n in notifications if n.get("type") == "follow" and n.get("account")]
        if len(follows) <= state.FLOOD:
            for notification in notifications:
                await self.handle_notification(app, notification)
            return
        for notification in notifications:  # said again if the list below fails: keyed
            if notification.get("type") != "follow":
                for event in self.events_for(app, notification):
                    await app.handle(event)
        me = self.client.me or {}
        profiles, skipped = self.client.read_all([n["account"] for n in follows])
        await app.handle(SnapshotReceived(
            owner_ref=app.settings.owner_ref, platform=PLATFORM, complete=False,
            profiles=profiles, unreadable=skipped,
            account_external_id=str(me.get("id", "")), account_handle=self.client.own_handle(),
            cursor=SourceCursor(PLATFORM, notifications[-1]["id"]),
        ))

    async def handle_notification(self, app, notification: dict[str, Any]) -> None:
        """Turn one notification into events; the last one moves the cursor past it, in
        its own transaction (a failed one leaves the notification to be fetched again)."""
        events = self.events_for(app, notification) or [
            CursorMoved(owner_ref=app.settings.owner_ref)]
        current = state.load_state(app, PLATFORM).cursor
        place = clean_id(notification.get("id"))
        if place is not None and newer(place, current):
            events[-1].cursor = SourceCursor(PLATFORM, place)
        for event in events:
            await app.handle(event)

    def events_for(self, app, notification: dict[str, Any]) -> list[Event]:
        owner_ref = app.settings.owner_ref
        kind = notification.get("type")
        account = notification.get("account")
        if kind in ("follow", "follow_request") and "account" in notification:
            profile = self.client.read(account)
            if isinstance(profile, Unreadable):  # told once; the cursor moves past it
                return [ProfilesUnreadable(owner_ref=owner_ref, platform=PLATFORM,
                                           entries=[profile])]
            if kind == "follow_request":
                return [FollowRequested(owner_ref=owner_ref, profile=profile)]
            at = notification_time(notification, app.clock())
            return [NewConnection(owner_ref=owner_ref, profile=profile, at=at)]
        if kind == "severed_relationships" and isinstance(notification.get("event"), dict):
            return self._severed(app, notification["event"])
        return []

    def _severed(self, app, event: dict[str, Any]) -> list[Event]:
        """Who was cut is not in the notification: it names a domain or an account, and
        the connections are the stored ones on it. The cause reads "<type>:<target>"."""
        target = str(event.get("target_name") or "").lower().lstrip("@")
        kind = str(event.get("type") or "moderation")
        events: list[Event] = []
        for connection_kind in ("follower", "following"):
            handles = state.connected_handles(app, PLATFORM, kind=connection_kind)
            ids = [i for i, h in handles.items() if _severed_by(h, target, kind)]
            if ids:
                events.append(ConnectionsSevered(
                    owner_ref=app.settings.owner_ref, platform=PLATFORM, external_ids=ids,
                    cause=f"{kind}:{target}", kind=connection_kind))
        return events

    # -- reconciliation -----------------------------------------------------------------
    async def reconcile(self, app, me: dict[str, Any]) -> None:
        """The whole follower list, page by page; an interruption makes it partial."""
        profiles: list[Profile] = []
        skipped: list[Unreadable] = []
        complete = True
        page = await self.client.call(self.client.api.account_followers, me["id"],
                                      limit=FOLLOWER_PAGE)
        try:
            for _ in range(MAX_PAGES):
                readable, unreadable_here = self.client.read_all(
                    list(page) if isinstance(page, list) else [])
                profiles += readable
                skipped += unreadable_here
                if not page or not _has_next(page):
                    break
                page = await self.client.call(self.client.api.fetch_next, page)
        except (MastodonIOError, MastodonServerError, MastodonRatelimitError) as exc:
            log.warning("follower list interrupted after %d (%s); treating it as partial",
                        len(profiles), type(exc).__name__)
            complete = False
        await app.handle(SnapshotReceived(
            owner_ref=app.settings.owner_ref, platform=PLATFORM, profiles=profiles,
            complete=complete, account_external_id=str(me["id"]),
            account_handle=self.client.own_handle(), unreadable=skipped,
        ))

    # -- streaming ----------------------------------------------------------------------
    def streaming(self) -> bool:
        """True while the stream is connected; while it reconnects, polling covers."""
        return self.stream is not None and self.stream.is_receiving()

    def _stream_thread_alive(self) -> bool:
        return self.stream is not None and self.stream.is_alive()

    async def _start_stream(self, app) -> None:
        loop = asyncio.get_running_loop()

        def deliver(notification: dict[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(self._streamed(app, notification), loop)

        try:
            # with run_async=True it returns the stream's handle (its stubs say None)
            self.stream = await asyncio.to_thread(  # type: ignore[func-returns-value]
                self.client.api.stream_user, _Listener(deliver), run_async=True)
        except MastodonError as exc:
            log.warning("cannot open the Mastodon stream (%s); polling instead",
                        type(exc).__name__)
            self.stream = None

    async def _streamed(self, app, notification: dict[str, Any]) -> None:
        async with self._lock:
            try:
                await self.handle_notification(app, notification)
            except Exception:
                log.exception("a streamed Mastodon notification failed; the next poll "
                              "fetches it again")

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def placeable(items: list[Any]) -> tuple[list[dict[str, Any]], list[Unreadable]]:
    """Notifications that can be placed against the cursor (an object with an id), the
    id normalised to text; and the others, as unreadable entries to tell the owner
    about. Those cannot be told apart from the next one, so they are left out: a
    follow hidden in one is found by the next reconciliation of the follower list."""
    placed = []
    unplaced = []
    for item in items:
        place = clean_id(item.get("id")) if isinstance(item, dict) else None
        if place is None:
            log.warning("a Mastodon notification without a readable id was skipped")
            unplaced.append(translate.unplaced(PLATFORM, item, "account", UNPLACED))
            continue
        placed.append({**item, "id": place})
    return placed, unplaced


def _has_next(page) -> bool:
    return getattr(page, "_pagination_next", None) is not None


def _severed_by(handle: str, target: str, kind: str) -> bool:
    if not target:
        return False
    if kind == "account_suspension" and "@" in target:
        return handle == target
    return handle.endswith(f"@{target}") or handle == target


def status_length(status: str) -> int:
    """Characters as Mastodon counts them: links are 23, mentions count only the user."""
    counted = re.sub(r"https?://\S+", "x" * URL_LENGTH, status)
    counted = re.sub(r"(@[\w.-]+)@[\w.-]+\w", r"\1", counted)
    return len(counted)


class MastodonSender:
    """Sends an approved welcome as a direct status mentioning the person."""

    platform = PLATFORM

    def __init__(self, client: MastodonClient) -> None:
        self.client = client

    async def send_welcome(self, *, handle: Handle, text: str, via: str | None = None) -> str:
        """Post ``text`` as a direct status mentioning the person (``via`` has no choices
        here). Unreachable before sending is a refusal; a timeout or a connection dropped
        once the request was out is ``SendUncertain``."""
        acct = (getattr(handle, "display_handle", "") or handle.handle).lstrip("@")
        status = f"@{acct} {text}"
        limit = await self.client.max_characters()
        length = status_length(status)
        if length > limit:
            raise SendRefused(
                f"The welcome with its @mention is {length} characters; your Mastodon "
                f"instance allows {limit}. Shorten it with `edit` and send it again.")
        key = hashlib.sha256(f"{acct}\n{text}".encode()).hexdigest()[:32]
        try:
            posted = await self.client.call(self.client.api.status_post, status,
                                            visibility="direct", idempotency_key=key)
        except MastodonNetworkError as exc:
            if may_have_arrived(exc):
                raise SendUncertain(f"{type(exc.__context__).__name__} from "
                                    f"{self.client.base_url}") from None
            raise SendRefused(self._refusal(exc)) from None
        except MastodonError as exc:
            raise SendRefused(self._refusal(exc)) from None
        url = plain(posted).get("url") or ""
        return f"Sent to @{acct} as a direct message on Mastodon{f': {url}' if url else ''}."

    def _refusal(self, exc: MastodonError) -> str:
        status = exc.args[1] if isinstance(exc, MastodonAPIError) and len(exc.args) > 1 else None
        if status in (401, 403) or isinstance(exc, MastodonUnauthorizedError):
            _, message = describe_failure(exc, self.client.base_url)
            return message
        if isinstance(exc, MastodonRatelimitError):
            return "Mastodon is rate limiting the bot. Try `send` again later."
        if status and 400 <= status < 500:
            detail = exc.args[3] if len(exc.args) > 3 and exc.args[3] else f"HTTP {status}"
            return f"Mastodon would not post it ({detail})."
        return (f"I cannot reach your Mastodon instance at {self.client.base_url}. "
                f"Try `send` again later.")


def may_have_arrived(exc: MastodonNetworkError) -> bool:
    """Whether a failed request may still have reached the instance: Mastodon.py wraps
    the ``requests`` error, which says whether the connection was ever made."""
    cause = exc.__context__
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(cause, requests.exceptions.ConnectionError):
        reason = str(cause)
        return not any(word in reason for word in (
            "NewConnectionError", "Connection refused", "Name or service not known",
            "Failed to resolve", "nodename nor servname"))
    return isinstance(cause, requests.exceptions.Timeout | requests.exceptions.ChunkedEncodingError)


def build_source(settings: Settings, *, clock: Clock = utcnow,
                 sleep: Sleep = asyncio.sleep) -> MastodonSource | None:
    """The Mastodon source when MASTODON_BASE_URL and MASTODON_ACCESS_TOKEN are set."""
    base_url = (settings.mastodon_base_url or "").strip()
    token = settings.mastodon_access_token
    has_token = bool(token and token.get_secret_value().strip())
    if not base_url and not has_token:
        return None
    if not base_url:
        raise ConfigError("MASTODON_ACCESS_TOKEN is set but MASTODON_BASE_URL is not: set it "
                          "to your instance, e.g. https://mastodon.social")
    if not has_token:
        raise ConfigError("MASTODON_BASE_URL is set but MASTODON_ACCESS_TOKEN is not: create "
                          f"a token with the scopes {SCOPES} (see config.example.env)")
    return MastodonSource(settings, MastodonClient(settings, clock=clock, sleep=sleep))


def build_sender(settings: Settings) -> WelcomeSender | None:
    """The welcome sender alone, for a process that polls nothing (``plnbot console``);
    typed as the port, so mypy checks the sender against it."""
    source = build_source(settings)
    return source.sender if source is not None else None

