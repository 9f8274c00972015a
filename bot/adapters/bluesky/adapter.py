"""Bluesky as a connection source and, where the person allows it, a chat sender (atproto).

- New followers come from ``app.bsky.notification.listNotifications`` (reason
  ``follow``), newest first, down to the newest one already handled; its time is the
  stored cursor (``Account.cursor``), so a restart resumes exactly there.
- The follower list is reconciled page by page (``getFollowers``) for the quiet
  baseline and every ``PLNBOT_RECONCILE_HOURS``.
- An approved welcome goes through the chat service (``getConvoForMembers`` +
  ``sendMessage``, at most 1,000 graphemes), but only when the person's
  ``associated.chat.allowIncoming`` lets the owner write to them; otherwise the owner
  is told to send the text by hand.

atproto's ``AsyncClient`` runs on the event loop; its responses pass through an
httpx hook that reads Bluesky's ``ratelimit-*`` headers for the waits.

Bluesky allows ``createSession`` only 30 times in 5 minutes and 300 times a day per
account, and locks out further logins after that; a poll every 5 minutes that logged in
each time would spend 288 a day. So the session (its access and refresh JWTs) is kept
with the account's encrypted credentials (``state.save_session``: PLNBOT_SECRET_KEY)
after every login and refresh, and the next poll, the next run, or a console sending a
welcome (``BlueskySender.attach``) reuses it; atproto refreshes it (``refreshSession``)
when its access token nears expiry. A session the server refuses (an expired or revoked
refresh token, a revoked app password) is replaced by the one stored since, when another
process refreshed it, else by a new login. Without a key nothing is stored and a process
logs in once per run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import regex
from atproto_client import AsyncClient, models
from atproto_client.client.session import Session as AtSession
from atproto_client.client.session import SessionEvent
from atproto_client.exceptions import (
    BadRequestError,
    LoginRequiredError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    RequestException,
    UnauthorizedError,
)
from atproto_client.models.utils import get_model_as_dict, get_or_create
from atproto_client.request import AsyncRequest, Response, _parse_response
from atproto_core.exceptions import AtProtocolError
from atproto_server.exceptions import TokenDecodeError  # type: ignore[import-untyped]

from bot.adapters import state, translate
from bot.adapters.limits import Backoff, RateLimiter, Sleep
from bot.adapters.translate import SnapshotError, bluesky_profile, read_each, read_one
from bot.config import ConfigError, Settings, secret
from bot.context import Clock, utcnow
from bot.events import (
    CursorMoved,
    NewConnection,
    Profile,
    ProfilesUnreadable,
    SnapshotReceived,
    SourceChecked,
    SourceCursor,
    Unreadable,
)
from bot.logs import redact_also
from bot.ports import SendRefused, SendUncertain, WelcomeSender

if TYPE_CHECKING:
    from storage.models import Handle

log = logging.getLogger(__name__)
T = TypeVar("T")

PLATFORM = "bluesky"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # sorts an undated notification first
DEFAULT_BASE_URL = "https://bsky.social"
NOTIFICATION_PAGE = 50
FOLLOWER_PAGE = 100
MAX_PAGES = 1000
REQUEST_TIMEOUT = 30.0  # seconds per HTTP request; a hung server is a failed poll
MAX_GRAPHEMES = 1000
MAX_HANDLE = 253  # a handle is a domain name
RATE_LIMIT_RETRIES = 3
UNPLACED = ("its notification has no readable time, so it was left out; the next "
            "reconciliation of your followers finds them")
# what a PDS answers for a session it no longer accepts (400 ExpiredToken: an expired or
# revoked token; 401 InvalidToken / AuthenticationRequired: one it cannot verify)
REFUSED_SESSION = ("ExpiredToken", "InvalidToken", "AuthenticationRequired")
PASSWORD_HINT = ("Create an app password (Settings → Privacy and security → App passwords) "
                 "and set BLUESKY_APP_PASSWORD")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client in the process: httpx builds a new one per
    client otherwise, reading the whole CA bundle (about 60 ms of processor time), and a
    worker makes a client for every connected account it polls."""
    return httpx.create_ssl_context()


class TolerantRequest(AsyncRequest):
    """atproto's HTTP layer, reading a JSON answer that its strict parser refuses (a
    lone surrogate such as ``"\\ud800"`` in one person's name) as Python's own parser
    does, so one such profile is cleaned like any other text instead of failing the
    whole page, and every later poll, as unreadable."""

    async def get(self, *args: Any, **kwargs: Any) -> Response:
        answer = await self._send_request("GET", *args, **kwargs)
        try:
            return _parse_response(answer)
        except ValueError:
            return Response(success=True, status_code=answer.status_code,
                            content=json.loads(answer.content),
                            headers={k.lower(): v for k, v in answer.headers.items()})


class ClockedClient(AsyncClient):
    """atproto's client telling the time by the bot's clock: it refreshes the session
    when the access token is 15 minutes from its expiry by that clock."""

    def __init__(self, *args: Any, clock: Clock = utcnow, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def _inherit_clone_state(self, original: ClockedClient) -> None:  # the chat proxy's
        super()._inherit_clone_state(original)
        self.clock = original.clock

    def get_current_time(self) -> datetime:
        return self.clock()


class BlueskyClient:
    """One logged-in atproto client, within Bluesky's rate limits."""

    def __init__(self, settings: Settings, *, clock: Clock = utcnow,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.base_url = (settings.bluesky_base_url or DEFAULT_BASE_URL).rstrip("/")
        self.login_handle = (settings.bluesky_handle or "").strip().lstrip("@")
        self._password = settings.bluesky_app_password
        self.limiter = RateLimiter(prefix="ratelimit-", clock=clock, sleep=sleep)
        self.request = TolerantRequest(timeout=REQUEST_TIMEOUT, verify=tls_context(),
                                       event_hooks={"response": [self._observe]})
        self.api = ClockedClient(base_url=self.base_url, request=self.request, clock=clock)
        self.api.on_session_change(self._session_changed)
        self.did: str | None = None
        self.handle: str = self.login_handle
        # reads the stored session, and stores a new or refreshed one durably (None:
        # forget it): set by the poll (``BlueskySource``) or the sender's ``attach``, both
        # to the owner's account, so a poller and a console share one session
        self.load: Callable[[], dict | None] | None = None
        self.keep: Callable[[dict[str, str] | None], Any] | None = None

    async def _observe(self, response: httpx.Response) -> None:
        self.limiter.observe(response.headers)

    async def call(self, func: Callable, *args, **kwargs):
        """``await func(...)``; a 429 waits for the window and tries again. An answer that
        is not what the API promises (an HTML error page, a page cut off) is an
        ``UnreadableAnswer``, handled like any other failed call."""
        for attempt in range(RATE_LIMIT_RETRIES):
            await self.limiter.wait_if_spent()
            try:
                return await func(*args, **kwargs)
            except RateLimitExceededError:
                if attempt == RATE_LIMIT_RETRIES - 1:
                    raise
                await self.limiter.wait_after_refusal()
            except ValueError as exc:  # JSON that does not parse, or not the promised shape
                raise UnreadableAnswer(type(exc).__name__) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def ensure_login(self, stored: dict | None = None) -> bool:
        """A session: the one this client holds, else ``stored`` (kept by an earlier poll
        or run for this handle on this server), else a new login (``createSession``).
        Whether the session was reused, so that the server may refuse it."""
        if self.did is not None:
            return True
        kept = self._usable(stored)
        if kept is not None:  # no request: the session is only installed
            await self.api.login(session_string=kept.export(), fetch_bsky_profile=False)
        else:
            await self.call(self.api.login, self.login_handle, secret(self._password),
                            fetch_bsky_profile=False)
        session = self.api._session
        self.did, self.handle = session.did, session.handle
        return kept is not None

    async def logged_in(self, work: Callable[[], Awaitable[T]]) -> T:
        """``await work()`` with a session: the one held, else the stored one, else a new
        login. A session the server refuses (expired, revoked, or its refresh token
        rotated by another process sharing it) is replaced once by the one stored since,
        when another process stored a newer one, else by a new login; only a login that
        fails is the caller's problem. ``work`` must be safe to repeat after a refusal
        (nothing the server refuses for the session has been done)."""
        reused = False
        try:
            reused = await self.ensure_login(self._load() if self.did is None else None)
            return await work()
        except AtProtocolError as exc:
            # a kept token that cannot even be read (TokenDecodeError) is refused too
            if not (reused and refused_or_unreadable(exc)):
                raise
        newer = self._newer_stored()
        if newer is not None:
            log.info("the Bluesky session was refused; using the one stored since")
            self.did = None
            try:
                await self.ensure_login(newer)
                return await work()
            except AtProtocolError as exc:
                if not refused_or_unreadable(exc):
                    raise
        log.info("the Bluesky session was refused; logging in again")
        self.forget_session()
        await self.ensure_login()
        return await work()

    def _load(self) -> dict | None:
        return self.load() if self.load is not None else None

    def _newer_stored(self) -> dict | None:
        """The stored session when it is not the one this client holds: another process
        (a poll, a console) refreshed or replaced it since this one read it."""
        stored = self._load()
        kept = self._usable(stored)
        held = self.api._session
        if kept is None or (held is not None and kept.export() == held.export()):
            return None
        return stored

    def _usable(self, stored: dict | None) -> AtSession | None:
        """The stored session, when it was made for this login on this server."""
        if not stored or stored.get("login") != self.login_handle.lower() or \
                stored.get("server") != self.base_url:
            return None
        try:
            session = AtSession.decode(str(stored.get("session") or ""))
        except ValueError:  # not five fields: unreadable, so logged in anew
            return None
        redact_also([session.access_jwt, session.refresh_jwt])
        return session

    def _session_changed(self, event: SessionEvent, session: AtSession) -> None:
        """atproto made a session (login) or refreshed it (the refresh JWT rotates, and
        the old one soon stops working): store it before it is used."""
        redact_also([session.access_jwt, session.refresh_jwt])
        if event is SessionEvent.IMPORT or self.keep is None:
            return
        self.keep(kept_session(self.login_handle, self.base_url, session))

    def forget_session(self) -> None:
        """Drop the session, here and where it was stored: the server refused it."""
        self.did = None
        if self.keep is not None:
            self.keep(None)


def refused_or_unreadable(exc: Exception) -> bool:
    """A session the server refused, or a kept token atproto cannot even decode."""
    return session_refused(exc) or isinstance(exc, TokenDecodeError)


def kept_session(login: str, server: str, session: AtSession) -> dict[str, str]:
    """A session as stored (encrypted) with the account's credentials: with the login
    and the server it was made for, so a changed handle or server logs in anew."""
    return {"login": login.strip().lstrip("@").lower(), "server": server.rstrip("/"),
            "session": session.export()}


def as_dict(model: Any) -> dict[str, Any]:
    return get_model_as_dict(model)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class UnreadableAnswer(AtProtocolError):
    """Bluesky answered, but not with what its API promises."""


def profile_view(item: dict[str, Any]) -> Profile:
    """One follower's profile view, read on its own: ``getFollowers`` through atproto's
    models would refuse the whole page for one bad entry. A view needs a DID and a
    handle (without them nobody can be looked up or shown); every other field of the
    wrong type or length is cleaned like any profile text (``bluesky_profile``)."""
    handle = item.get("handle")
    if handle is None or handle == "":
        raise KeyError("handle")
    if not isinstance(handle, str) or len(handle) > MAX_HANDLE:
        raise SnapshotError("its 'handle' is not a handle")
    return bluesky_profile(item)


async def query(client: BlueskyClient, nsid: str, params_model: type,
                params: dict[str, Any], items_key: str) -> tuple[list[Any], str | None]:
    """An XRPC query's list (``items_key``) and cursor, the items left unread: the
    namespace methods would validate the whole page at once, so one bad entry would
    fail the poll that carries it (and every later one)."""
    response = await client.call(client.api.invoke_query, nsid,
                                 params=get_or_create(params, params_model),
                                 output_encoding="application/json")
    content = response.content
    items = content.get(items_key) if isinstance(content, dict) else None
    cursor = content.get("cursor") if isinstance(content, dict) else None
    if not isinstance(items, list) or not isinstance(cursor, str | None):
        raise UnreadableAnswer(f"{nsid} without a list of {items_key}")
    return items, cursor


def session_refused(exc: Exception) -> bool:
    """Whether the server refused the session or the login (not the request itself)."""
    if isinstance(exc, UnauthorizedError | LoginRequiredError):
        return True
    if isinstance(exc, BadRequestError):
        content = getattr(exc.response, "content", None)
        return getattr(content, "error", None) in REFUSED_SESSION
    return False


def describe_failure(exc: Exception, base_url: str) -> tuple[str, str]:
    """(a stable problem code, the message for the owner) for a failed call."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if session_refused(exc):
        return "auth", (f"Bluesky refused the login ({status or 'unauthorized'}): check "
                        f"BLUESKY_HANDLE and BLUESKY_APP_PASSWORD. {PASSWORD_HINT}.")
    if isinstance(exc, RateLimitExceededError):
        return "rate", ("Bluesky keeps refusing requests as rate limited; the bot waits and "
                        "retries later.")
    if isinstance(exc, BadRequestError):
        return "config", (f"Bluesky did not accept the bot's request ({exc}). Check "
                          f"BLUESKY_HANDLE (your handle, e.g. jane.bsky.social).")
    if isinstance(exc, UnreadableAnswer):
        return "server", (f"Bluesky at {base_url} sent an answer the bot could not read "
                          f"({exc}): usually a passing fault on their side. The bot keeps "
                          f"retrying with increasing pauses; nobody is removed meanwhile.")
    reason = f"HTTP {status}" if status else type(exc).__name__
    return "server", (f"Cannot reach Bluesky at {base_url} ({reason}). The bot keeps retrying "
                      f"with increasing pauses; check BLUESKY_BASE_URL if you set it.")


def keep_with(client: BlueskyClient, app) -> None:
    """Keep ``client``'s session with the owner's account of ``app`` (encrypted, and only
    with PLNBOT_SECRET_KEY: ``state.load_session``/``save_session``)."""
    client.load = functools.partial(state.load_session, app, PLATFORM)
    client.keep = functools.partial(state.save_session, app, PLATFORM)


class BlueskySource:
    """Polls the owner's Bluesky account into events."""

    platform = PLATFORM

    def __init__(self, settings: Settings, client: BlueskyClient) -> None:
        self.settings = settings
        self.client = client
        self.sender = BlueskySender(client)
        self.backoff = Backoff()

    def rate_limited_until(self) -> datetime | None:
        """Until when the last answer said the request budget is spent (None: it is not);
        a poller of many accounts remembers it instead of waiting (bot/connected.py)."""
        return self.client.limiter.spent_until()

    async def aclose(self) -> None:
        """Close the HTTP connections (a poller of many accounts makes a source for each)."""
        await self.client.request.close()

    async def poll(self, app) -> None:
        if not self.backoff.ready(app.clock()):
            return
        try:
            await self._poll_with_fresh_session(app)
        except AtProtocolError as exc:
            await self._failed(app, exc)
            return
        self.backoff.succeeded()
        await app.handle(SourceChecked(owner_ref=app.settings.owner_ref, platform=PLATFORM,
                                       account_external_id=self.client.did or "",
                                       account_handle=self.client.handle))

    async def _poll_with_fresh_session(self, app) -> None:
        """The session held, else the one stored with the account, is used; one the
        server refuses is replaced (``BlueskyClient.logged_in``: by the one another
        process stored since, else by a new login); only a login that fails is the
        owner's problem."""
        keep_with(self.client, app)
        await self.client.logged_in(functools.partial(self._poll, app))

    async def _poll(self, app) -> None:
        current = state.load_state(app, PLATFORM)
        if current.cursor is None:
            newest = await self._newest_follow_time()
            await app.handle(CursorMoved(owner_ref=app.settings.owner_ref, cursor=SourceCursor(
                PLATFORM, newest or app.clock().isoformat())))
        else:
            await self._catch_up(app, current.cursor)
        if current.reconcile_due(app.clock(), timedelta(hours=self.settings.reconcile_hours)):
            await self.reconcile(app)

    async def _failed(self, app, exc: AtProtocolError) -> None:
        if session_refused(exc):
            self.client.forget_session()
        delay = self.backoff.failed(app.clock())
        log.warning("Bluesky poll failed (%s); next attempt in %s", type(exc).__name__, delay)
        code, message = describe_failure(exc, self.client.base_url)
        await app.handle(SourceChecked(owner_ref=app.settings.owner_ref, platform=PLATFORM,
                                       problem=code, text=message))

    # -- follow notifications -----------------------------------------------------------
    async def _notifications(self, cursor: str | None = None, limit: int | None = None,
                             ) -> tuple[list[dict[str, Any]], str | None, list[Unreadable]]:
        """A page of follow notifications that can be placed in time (an object with a
        readable ``indexedAt``), newest first; the page's cursor; and the others, as
        unreadable entries to tell the owner about (left out: they cannot be placed
        against the cursor, and the next reconciliation finds whoever they were)."""
        params = {"reasons": ["follow"], "limit": limit or NOTIFICATION_PAGE}
        if cursor:
            params["cursor"] = cursor
        items, next_cursor = await query(
            self.client, "app.bsky.notification.listNotifications",
            models.AppBskyNotificationListNotifications.Params, params, "notifications")
        placed = [n for n in items if isinstance(n, dict) and placed_at(n)]
        unplaced = [translate.unplaced(PLATFORM, n, "author", UNPLACED) for n in items
                    if not (isinstance(n, dict) and placed_at(n))]
        if unplaced:
            log.warning("%d Bluesky notifications without a readable time were left out "
                        "(the next reconciliation finds whoever they were)", len(unplaced))
        return placed, next_cursor, unplaced

    async def _newest_follow_time(self) -> str | None:
        notifications, _, _ = await self._notifications(limit=1)
        return notifications[0]["indexedAt"] if notifications else None

    async def fetch_since(self, seen: str) -> tuple[list[dict[str, Any]], list[Unreadable]]:
        """Follow notifications newer than ``seen``, oldest first (plain JSON objects),
        and those on the pages read that cannot be placed in time."""
        seen_at = parse_time(seen)
        found: list[dict[str, Any]] = []
        unplaced: list[Unreadable] = []
        page_cursor = None
        for _ in range(MAX_PAGES):
            notifications, next_cursor, left_out = await self._notifications(page_cursor)
            unplaced += left_out
            fresh = [n for n in notifications
                     if n.get("reason") == "follow" and _is_newer(n["indexedAt"], seen_at)]
            found.extend(fresh)
            if len(fresh) < len(notifications) or not next_cursor:
                break
            page_cursor = next_cursor
        return sorted(found, key=lambda n: placed_at(n) or EPOCH), unplaced

    async def _catch_up(self, app, seen: str) -> None:
        notifications, unplaced = await self.fetch_since(seen)
        owner_ref = app.settings.owner_ref
        if unplaced:  # told once (keyed); the cursor cannot move past what has no place
            await app.handle(ProfilesUnreadable(owner_ref=owner_ref, platform=PLATFORM,
                                                entries=unplaced))
        if not notifications:
            return
        # the newest fetched: past every one of them, stored or deliberately skipped
        cursor = SourceCursor(PLATFORM, notifications[-1]["indexedAt"])
        read = [(n, read_one(PLATFORM, n.get("author"), profile_view)) for n in notifications]
        skipped = [r for _, r in read if isinstance(r, Unreadable)]
        people = [(n, r) for n, r in read if isinstance(r, Profile)]
        if len(people) > state.FLOOD:
            await app.handle(SnapshotReceived(
                owner_ref=owner_ref, platform=PLATFORM, complete=False,
                profiles=[profile for _, profile in people], unreadable=skipped,
                account_external_id=self.client.did or "", account_handle=self.client.handle,
                cursor=cursor,
            ))
            return
        if skipped:  # told once; with nobody else to store, its event moves the cursor
            await app.handle(ProfilesUnreadable(owner_ref=owner_ref, platform=PLATFORM,
                                                entries=skipped,
                                                cursor=None if people else cursor))
        if not people:
            return
        arrivals = [NewConnection(owner_ref=owner_ref, profile=profile,
                                  at=placed_at(notification))
                    for notification, profile in people]
        # written together; the cursor moves in the transaction that stores the last one
        arrivals[-1].cursor = cursor
        await app.handle_arrivals(arrivals)

    # -- reconciliation -----------------------------------------------------------------
    async def reconcile(self, app) -> None:
        """The whole follower list, page by page; an interruption makes it partial."""
        profiles: list[Profile] = []
        skipped: list[Unreadable] = []
        complete = True
        followers, cursor = await self._followers(None)
        try:
            for _ in range(MAX_PAGES):
                readable, unreadable = read_each(PLATFORM, followers, profile_view)
                profiles += readable
                skipped += unreadable
                if not cursor or not followers:
                    break
                followers, cursor = await self._followers(cursor)
        except (NetworkError, RateLimitExceededError) as exc:
            log.warning("Bluesky follower list interrupted after %d (%s); treating it as "
                        "partial", len(profiles), type(exc).__name__)
            complete = False
        await app.handle(SnapshotReceived(
            owner_ref=app.settings.owner_ref, platform=PLATFORM, profiles=profiles,
            complete=complete, account_external_id=self.client.did or "",
            account_handle=self.client.handle, unreadable=skipped,
        ))

    async def _followers(self, cursor: str | None) -> tuple[list[Any], str | None]:
        """One page of ``getFollowers``: its entries unread, and the next cursor."""
        params: dict[str, Any] = {"actor": self.client.did, "limit": FOLLOWER_PAGE}
        if cursor:
            params["cursor"] = cursor
        return await query(self.client, "app.bsky.graph.getFollowers",
                           models.AppBskyGraphGetFollowers.Params, params, "followers")


def placed_at(notification: dict[str, Any]) -> datetime | None:
    """When a notification was indexed, or None when that cannot be read (it cannot be
    placed against the cursor, so it is left out like one Bluesky never sent)."""
    value = notification.get("indexedAt")
    return parse_time(value) if isinstance(value, str) and len(value) <= 64 else None


def _is_newer(indexed_at: str, seen_at: datetime | None) -> bool:
    moment = parse_time(indexed_at)
    return seen_at is None or (moment is not None and moment > seen_at)


def grapheme_count(text: str) -> int:
    return len(regex.findall(r"\X", text))


def chat_service_missing(exc: RequestErrorBase) -> bool:
    """Whether the owner's server said it has no way to a chat service: a server error, a
    method it does not serve, or a proxy it cannot resolve (not a refusal by the person)."""
    response = exc.response
    if response is None or isinstance(exc, RateLimitExceededError):
        return False
    if response.status_code >= 500 or response.status_code in (404, 501):
        return True
    return response.status_code == 400 and (
        "proxy" in str(exc).lower() or "MethodNotImplemented" in str(exc))


def chat_allowed(profile: dict[str, Any]) -> tuple[bool, str]:
    """Whether the owner may open a chat with this person, and their setting.

    Bluesky's default (no setting published) is "following": only people the person
    follows may write — i.e. they must follow the owner.
    """
    chat = ((profile.get("associated") or {}).get("chat") or {})
    allow = chat.get("allowIncoming") or "following"
    if allow == "all":
        return True, allow
    if allow == "following":
        return bool((profile.get("viewer") or {}).get("followedBy")), allow
    return False, allow


class BlueskySender:
    """Sends an approved welcome as a Bluesky chat message when the person allows it.

    It shares the poller's session: the one its client holds (``plnbot run``), else the
    one stored with the owner's account, kept there again when refreshed (``attach``), so
    a ``plnbot console`` that sends a welcome logs in only when no session is stored or
    the server refuses it (Bluesky: 300 logins a day, 30 in 5 minutes)."""

    platform = PLATFORM

    def __init__(self, client: BlueskyClient) -> None:
        self.client = client

    def attach(self, app) -> None:
        """Keep the session with ``app``'s owner's account (``App`` calls this for every
        sender that offers it): the account whose handle and password built the client."""
        keep_with(self.client, app)

    async def send_welcome(self, *, handle: Handle, text: str, via: str | None = None) -> str:
        """Send ``text`` as a chat message when the person's chat setting allows it
        (``via`` has no choices here). Everything up to ``sendMessage`` is refused when it
        fails (nothing went out); a timeout or dropped connection during ``sendMessage``
        itself is ``SendUncertain``. A session the server refuses is replaced (see
        ``BlueskyClient.logged_in``) and the welcome tried once more: a refused session
        means nothing was sent."""
        shown = f"@{(getattr(handle, 'display_handle', '') or handle.handle).lstrip('@')}"
        if grapheme_count(text) > MAX_GRAPHEMES:
            raise SendRefused(f"Bluesky chat messages hold at most {MAX_GRAPHEMES} characters; "
                              f"this welcome has {grapheme_count(text)}. Shorten it with `edit`.")
        try:
            await self.client.logged_in(functools.partial(
                self._send, handle.external_id, text, shown))
        except AtProtocolError as exc:
            if self.client.did is None and session_refused(exc):  # the login itself
                _, message = describe_failure(exc, self.client.base_url)
                raise SendRefused(f"{message} Then `send` it again.") from None
            raise SendRefused(self._refusal(exc, shown)) from None
        return f"Sent to {shown} as a Bluesky chat message."

    async def _send(self, did: str, text: str, shown: str) -> None:
        """The chat calls; an ``AtProtocolError`` escapes only when nothing was sent."""
        await self._check_allowed(did, shown)
        dm = self.client.api.with_bsky_chat_proxy()
        convo = await self._open_convo(dm, did)
        try:
            await self.client.call(dm.chat.bsky.convo.send_message, data={
                "convo_id": convo.convo.id, "message": {"text": text}})
        except UnreadableAnswer as exc:  # it answered, but not as promised: it may have sent
            raise SendUncertain(f"an unreadable answer from Bluesky's chat service ({exc})") \
                from None
        except httpx.TransportError as exc:  # atproto passes some (a dropped answer) as is
            raise SendUncertain(f"{type(exc).__name__} from Bluesky's chat service") from None
        except NetworkError as exc:
            if may_have_arrived(exc):
                raise SendUncertain(f"{type(exc.__cause__ or exc).__name__} from Bluesky's "
                                    "chat service") from None
            raise

    async def _open_convo(self, dm: AsyncClient, did: str) -> Any:
        """The conversation with ``did``. Nothing has been sent yet, so a server that cannot
        reach a chat service is a refusal with the way to send by hand, never a retry: the
        chat service is Bluesky's own (api.bsky.chat) and not part of the open-source
        servers, so a self-hosted PDS (or the reference one) answers 5xx or "could not
        resolve proxy did"."""
        try:
            return await self.client.call(dm.chat.bsky.convo.get_convo_for_members,
                                          params={"members": [did]})
        except (RequestException, BadRequestError) as exc:
            if not chat_service_missing(exc):
                raise
            status = exc.response.status_code if exc.response is not None else "?"
            raise SendRefused(  # the text itself is added once, by whoever reports this
                f"Bluesky chats are not available through your server {self.client.base_url} "
                f"(HTTP {status}): chats go through Bluesky's own chat service, which a "
                f"self-hosted or test server does not offer, so send it by hand") from None

    async def _check_allowed(self, did: str, shown: str) -> None:
        profile = await self.client.call(self.client.api.app.bsky.actor.get_profile,
                                         params={"actor": did})
        allowed, setting = chat_allowed(as_dict(profile))
        if not allowed:
            reason = ("they accept chats from nobody" if setting == "none" else
                      "they accept chats only from people they follow")
            raise SendRefused(self._closed(shown, reason))

    def _refusal(self, exc: AtProtocolError, shown: str) -> str:
        if isinstance(exc, UnauthorizedError):
            return ("Bluesky refused the chat: the app password must allow direct messages. "
                    "Create one with \"Allow access to your direct messages\" ticked and set "
                    "BLUESKY_APP_PASSWORD")
        if isinstance(exc, BadRequestError):
            return self._closed(shown, f"Bluesky said: {exc}")
        return self._unreachable(exc)

    @staticmethod
    def _closed(shown: str, reason: str) -> str:
        return f"{shown} cannot get a Bluesky chat from you ({reason})."

    def _unreachable(self, exc: AtProtocolError) -> str:
        if isinstance(exc, RateLimitExceededError):
            return "Bluesky is rate limiting the bot. Try `send` again later."
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = f"HTTP {status}" if isinstance(exc, RequestErrorBase) and status else \
            type(exc).__name__
        return f"I cannot reach Bluesky ({detail}). Try `send` again later."


def may_have_arrived(exc: NetworkError) -> bool:
    """Whether a failed ``sendMessage`` may still have reached the chat service: atproto
    wraps the httpx error, which says whether a connection was ever made."""
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    return isinstance(cause, httpx.TransportError)


def build_source(settings: Settings, *, clock: Clock = utcnow,
                 sleep: Sleep = asyncio.sleep) -> BlueskySource | None:
    """The Bluesky source when BLUESKY_HANDLE and BLUESKY_APP_PASSWORD are set."""
    handle = (settings.bluesky_handle or "").strip()
    password = settings.bluesky_app_password
    has_password = bool(password and password.get_secret_value().strip())
    if not handle and not has_password:
        return None
    if not handle:
        raise ConfigError("BLUESKY_APP_PASSWORD is set but BLUESKY_HANDLE is not: set it to "
                          "your handle, e.g. jane.bsky.social")
    if not has_password:
        raise ConfigError(f"BLUESKY_HANDLE is set but BLUESKY_APP_PASSWORD is not. "
                          f"{PASSWORD_HINT} (see config.example.env).")
    return BlueskySource(settings, BlueskyClient(settings, clock=clock, sleep=sleep))


def build_sender(settings: Settings) -> WelcomeSender | None:
    """The welcome sender alone, for a process that polls nothing (``plnbot console``);
    typed as the port, so mypy checks the sender against it."""
    source = build_source(settings)
    return source.sender if source is not None else None

