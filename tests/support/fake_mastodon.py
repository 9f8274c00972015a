"""A small Mastodon instance on 127.0.0.1 for tests of the real Mastodon.py client.

Payloads are built from the recorded responses in tests/fixtures/recorded/mastodon/
(a real Mastodon 4.6 answering Mastodon.py's own test suite): accounts, notifications,
instance information and statuses keep their real shape; only ids and names vary.
Pagination follows Mastodon's rules (newest first, ``Link`` headers with ``max_id``
and ``min_id``), and so do the rate-limit headers and error bodies.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from aiohttp import web

from tests.support.servers import RunningFake, faulty_answer, take_fault

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "mastodon"
TOKEN = "test-mastodon-token-3f9a"
OOB = "urn:ietf:wg:oauth:2.0:oob"
PUBLIC_PATHS = {"/api/v1/apps", "/oauth/token"}
VALID_SCOPES = {"read", "write", "follow", "push", "profile", "read:accounts", "read:follows",
                "read:notifications", "read:statuses", "write:statuses",
                "write:conversations", "write:follows"}


@cache
def recorded(name: str) -> list[dict[str, Any]]:
    """(uri, status, body) of every interaction in one recorded cassette."""
    data = yaml.safe_load((RECORDED / f"{name}.yaml").read_text(encoding="utf-8"))
    return [{"uri": i["request"]["uri"], "method": i["request"]["method"],
             "body": i["response"]["body"]["string"]} for i in data["interactions"]]


def recorded_json(name: str, uri_part: str, method: str = "GET") -> Any:
    for interaction in recorded(name):
        if uri_part in interaction["uri"] and interaction["method"] == method:
            return json.loads(interaction["body"])
    raise KeyError(f"{name}: no {method} {uri_part}")


def account_template() -> dict[str, Any]:
    account = recorded_json("test_stream_user_direct", "verify_credentials")
    for private in ("source", "role"):
        account.pop(private, None)
    return account


_ids = itertools.count(110_000_000_000_000_001)


def make_account(username: str, *, domain: str | None = "school.social", display_name: str = "",
                 note: str = "", locked: bool = False, bot: bool = False,
                 fields: list[dict] | None = None) -> dict[str, Any]:
    """A recorded Account object with a new id, name and (remote) domain."""
    account = account_template()
    account_id = str(next(_ids))
    acct = f"{username}@{domain}" if domain else username
    host = f"https://{domain}" if domain else "http://localhost:3000"
    account.update(id=account_id, username=username, acct=acct, display_name=display_name,
                   note=note, locked=locked, bot=bot, fields=fields or [],
                   url=f"{host}/@{username}", uri=f"{host}/users/{username}")
    return account


# What POST /api/v1/statuses takes (docs.joinmastodon.org/methods/statuses/#create)
STATUS_PARAMETERS = {
    "status", "media_ids[]", "poll[options][]", "poll[expires_in]", "poll[multiple]",
    "poll[hide_totals]", "in_reply_to_id", "sensitive", "spoiler_text", "visibility",
    "language", "scheduled_at", "quote_id", "quoted_status_id",
}
VISIBILITIES = {"public", "unlisted", "private", "direct"}


@dataclass
class FakeMastodon:
    """State of the fake instance; tests change it between polls."""

    token: str = TOKEN
    me: dict[str, Any] = field(default_factory=lambda: make_account("owner", domain=None,
                                                                    display_name="Owner"))
    followers: list[dict[str, Any]] = field(default_factory=list)  # newest first
    notifications: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    # entries a broken server or proxy puts on top of every notifications page, as given
    # (no id, or one that is no id): they cannot be paged by, so they are outside it
    unplaceable: list[Any] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, int | str]] = field(default_factory=list)  # (path part, fault)
    max_characters: int = 500
    ratelimit_remaining: int = 299
    ratelimit_reset: datetime = field(
        default_factory=lambda: datetime(2026, 11, 2, 9, 5, tzinfo=UTC))
    # with a clock, the budget is enforced as Mastodon does: once spent, every request
    # is a 429 until the reset, then a new window of 300 opens (without: only announced)
    limit_clock: Callable[[], datetime] | None = None
    stream_events: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _next_notification: itertools.count = field(default_factory=lambda: itertools.count(100))
    # OAuth (``connect mastodon``): registered apps by client id, codes an owner got by
    # approving in the browser, and access tokens issued for them (revocable)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    issued_tokens: set[str] = field(default_factory=set)

    # -- what tests set up ---------------------------------------------------------------
    def notify(self, kind: str, account: dict[str, Any] | None = None, **extra) -> dict:
        notification = copy.deepcopy(
            recorded_json("test_notifications_types", "types%5B%5D=follow&")[0])
        notification.pop("status", None)
        notification.update(id=str(next(self._next_notification)), type=kind,
                            group_key=f"ungrouped-{kind}", **extra)
        if account is not None:
            notification["account"] = account
        self.notifications.append(notification)
        return notification

    def follow(self, account: dict[str, Any]) -> dict:
        """Someone follows the owner: a follower and a ``follow`` notification."""
        self.followers.insert(0, account)
        return self.notify("follow", account)

    def sever(self, kind: str, target: str, followers: int) -> dict:
        event = {"id": "7", "type": kind, "purged": False, "target_name": target,
                 "followers_count": followers, "following_count": 0,
                 "created_at": "2026-11-02T08:00:00.000Z"}
        return self.notify("severed_relationships", None, event=event)

    def authorize(self, client_id: str, *, redirect_uri: str = OOB) -> str:
        """The owner opens the authorization link and approves: the code Mastodon shows
        (out-of-band) for that app, usable once."""
        app = self.apps[client_id]
        code = secrets.token_urlsafe(32)
        self.codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri,
                            "scope": " ".join(app["scopes"])}
        return code

    def revoke(self, token: str) -> None:
        """The owner revokes the bot's access (Preferences → Account → Authorized apps)."""
        self.issued_tokens.discard(token)

    def fail(self, path_part: str, fault: int | str, times: int = 1) -> None:
        """The next ``times`` requests whose path holds ``path_part`` fail with ``fault``:
        an HTTP status, or ``MALFORMED``, ``TRUNCATED`` or ``HANG`` (tests.support.servers)."""
        self.failures.extend([(path_part, fault)] * times)

    # -- the HTTP side -------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        get = app.router.add_get
        get("/api/v1/accounts/verify_credentials", self._verify_credentials)
        get("/api/v1/instance", self._instance_v1)
        get("/api/v1/instance/", self._instance_v1)
        get("/api/v2/instance", self._instance_v2)
        get("/api/v2/instance/", self._instance_v2)
        get("/api/v1/notifications", self._notifications)
        get("/api/v1/accounts/{id}/followers", self._followers)
        get("/api/v1/streaming/user", self._stream_user)
        app.router.add_post("/api/v1/statuses", self._post_status)
        app.router.add_post("/api/v1/apps", self._create_app)
        app.router.add_post("/oauth/token", self._oauth_token)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path_qs))
        fault = take_fault(self.failures, request.path)
        if fault is not None:
            return self._with_limits(await faulty_answer(fault, request, handler, self._error))
        if self._budget_spent():
            return self._with_limits(self._error(429))
        if request.path in PUBLIC_PATHS or request.path.startswith("/.well-known/"):
            return self._with_limits(await handler(request))
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer != self.token and bearer not in self.issued_tokens:
            return self._with_limits(
                web.json_response({"error": "The access token is invalid"}, status=401))
        return self._with_limits(await handler(request))

    def _error(self, status: int) -> web.Response:
        messages = {401: "The access token is invalid",
                    403: "This action is outside the authorized scopes",
                    422: "Validation failed: Text character limit of 500 exceeded",
                    429: "Too many requests"}
        if status in messages:
            return web.json_response({"error": messages[status]}, status=status)
        return web.Response(status=status, text="<html>Bad gateway</html>",
                            content_type="text/html")

    def _budget_spent(self) -> bool:
        if self.limit_clock is None:
            return False
        now = self.limit_clock()
        if now >= self.ratelimit_reset:  # a new window
            self.ratelimit_remaining = 300
            self.ratelimit_reset = now + timedelta(minutes=5)
        return self.ratelimit_remaining <= 0

    def _with_limits(self, response: web.StreamResponse) -> web.StreamResponse:
        if not response.prepared:
            self.ratelimit_remaining = max(0, self.ratelimit_remaining - 1)
            response.headers["X-RateLimit-Limit"] = "300"
            response.headers["X-RateLimit-Remaining"] = str(self.ratelimit_remaining)
            response.headers["X-RateLimit-Reset"] = (
                self.ratelimit_reset.isoformat(timespec="microseconds").replace("+00:00", "Z"))
        return response

    async def _create_app(self, request: web.Request) -> web.Response:
        """POST /api/v1/apps as Mastodon validates it (422 for what it refuses)."""
        form = await request.post()
        name, redirect = str(form.get("client_name", "")), str(form.get("redirect_uris", ""))
        scopes = str(form.get("scopes", "read")).split()
        problem = ("Application name can't be blank" if not name.strip() else
                   "Redirect URI must be an absolute URI." if not redirect.strip() else
                   "Scopes must contain only valid scopes"
                   if not set(scopes) <= VALID_SCOPES else None)
        if problem:
            return web.json_response({"error": f"Validation failed: {problem}"}, status=422)
        client_id = secrets.token_urlsafe(32)
        app = {"id": str(len(self.apps) + 1), "name": name, "website": form.get("website"),
               "scopes": scopes, "redirect_uri": redirect, "redirect_uris": redirect.split(),
               "client_id": client_id, "client_secret": secrets.token_urlsafe(32),
               "client_secret_expires_at": 0, "vapid_key": "BAhxXyHfAoMqrZEC"}
        self.apps[client_id] = app
        return web.json_response(app)

    async def _oauth_token(self, request: web.Request) -> web.Response:
        """POST /oauth/token (Doorkeeper): a code is good once, for its own app and
        redirect URI; anything else is ``invalid_client`` or ``invalid_grant``."""
        form = await request.post()
        app = self.apps.get(str(form.get("client_id", "")))
        if app is None or app["client_secret"] != form.get("client_secret"):
            return web.json_response({"error": "invalid_client", "error_description": (
                "Client authentication failed due to unknown client, no client "
                "authentication included, or unsupported authentication method.")}, status=401)
        grant = self.codes.pop(str(form.get("code", "")), None)
        if (form.get("grant_type") != "authorization_code" or grant is None
                or grant["client_id"] != app["client_id"]
                or grant["redirect_uri"] != form.get("redirect_uri")):
            return web.json_response({"error": "invalid_grant", "error_description": (
                "The provided authorization grant is invalid, expired, revoked, does not "
                "match the redirection URI used in the authorization request, or was issued "
                "to another client.")}, status=400)
        token = secrets.token_urlsafe(32)
        self.issued_tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer",
                                  "scope": grant["scope"], "created_at": 1764403200})

    async def _verify_credentials(self, request: web.Request) -> web.Response:
        return web.json_response(self.me)

    async def _instance_v1(self, request: web.Request) -> web.Response:
        instance = recorded_json("test_stream_user_direct", "/api/v1/instance/")
        instance["uri"] = "localhost:3000"
        instance["urls"]["streaming_api"] = self.url.replace("http://", "ws://")
        instance["configuration"]["statuses"]["max_characters"] = self.max_characters
        return web.json_response(instance)

    async def _instance_v2(self, request: web.Request) -> web.Response:
        instance = recorded_json("test_instance", "/api/v2/instance/")
        instance["configuration"]["urls"]["streaming"] = self.url.replace("http://", "ws://")
        return web.json_response(instance)

    async def _notifications(self, request: web.Request) -> web.Response:
        query = request.query
        types = query.getall("types[]", [])
        items = [n for n in self.notifications if not types or n["type"] in types]
        items = _window(items, query)
        return self._page(request, list(reversed(items)), key=lambda n: n["id"],
                          extra={"types[]": types}, front=self.unplaceable)

    async def _followers(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != self.me["id"]:
            return web.json_response({"error": "Record not found"}, status=404)
        # Mastodon pages followers by the follow's id; here a position stands in for it.
        # Each account is served exactly as stored, even one that is no account object.
        numbered = [{"_follow_id": str(len(self.followers) - i), "account": a}
                    for i, a in enumerate(self.followers)]
        window = _window(list(reversed(numbered)), request.query, key="_follow_id")
        page = list(reversed(window))
        return self._page(request, page, key=lambda a: a["_follow_id"], unwrap="account")

    def _page(self, request: web.Request, items: list[dict], *, key, extra=None,
              unwrap: str | None = None, front: list[Any] | None = None) -> web.Response:
        limit = int(request.query.get("limit", 40))
        page = items[:limit]
        body = [*(front or ()), *([item[unwrap] for item in page] if unwrap else page)]
        response = web.json_response(body)
        if page:
            extra = {k: v for k, v in (extra or {}).items() if v}
            base = f"{self.url}{request.path}"
            newer = urlencode({"min_id": key(page[0]), **extra}, doseq=True)
            links = [f'<{base}?{newer}>; rel="prev"']
            if len(items) > limit:
                older = urlencode({"max_id": key(page[-1]), **extra}, doseq=True)
                links.insert(0, f'<{base}?{older}>; rel="next"')
            response.headers["Link"] = ", ".join(links)
        return response

    async def _post_status(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        unknown = sorted(set(form) - STATUS_PARAMETERS)
        if unknown:  # stricter than Mastodon, which ignores them: a typo must show
            return web.json_response({"error": f"Unknown parameter: {unknown[0]}"}, status=422)
        if form.get("visibility", "public") not in VISIBILITIES:
            return web.json_response(
                {"error": "Validation failed: Visibility is not included in the list"},
                status=422)
        if not str(form.get("status", "")).strip():
            return web.json_response({"error": "Validation failed: Text can't be blank"},
                                     status=422)
        form["idempotency_key"] = request.headers.get("Idempotency-Key")
        status = recorded_json("test_status_post[None-direct]", "/api/v1/statuses", "POST")
        status.update(id=str(120_000_000_000_000_000 + len(self.statuses)),
                      content=f"<p>{form.get('status', '')}</p>",
                      visibility=form.get("visibility", "public"))
        status["url"] = f"http://localhost:3000/@owner/{status['id']}"
        self.statuses.append(form)
        return web.json_response(status)

    async def _stream_user(self, request: web.Request) -> web.StreamResponse:
        """Sends the queued notifications as SSE, then drops the connection."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b":)\n")
        for notification in self.stream_events:
            payload = json.dumps(notification)
            await response.write(f"event: notification\ndata: {payload}\n\n".encode())
        self.stream_events.clear()
        await asyncio.sleep(0.05)
        return response


def _window(items: list[dict], query, key: str = "id") -> list[dict]:
    """Mastodon's id window: ``since_id``/``min_id`` exclusive below, ``max_id`` above."""
    def number(value: str) -> int:
        return int(value)

    for name in ("since_id", "min_id"):
        if name in query:
            items = [i for i in items if number(i[key]) > number(query[name])]
    if "max_id" in query:
        items = [i for i in items if number(i[key]) < number(query["max_id"])]
    if "min_id" in query and "since_id" not in query:
        limit = int(query.get("limit", 40))
        items = items[:limit]  # min_id: the oldest page just above it
    return items


class RunningMastodon(RunningFake):
    """``with RunningMastodon() as fake:`` a fake instance serving HTTP on 127.0.0.1."""

    fake_type = FakeMastodon
