"""A small Bluesky PDS + chat service on 127.0.0.1 for tests of the real atproto client.

Profiles are the recorded ``getFollows`` profile views in
tests/fixtures/recorded/bluesky/ (real accounts, real shapes). The session's DID
document names this server as the PDS, so every call after ``createSession`` stays
local, including the chat calls that atproto sends with the ``atproto-proxy`` header.
Responses carry Bluesky's ``ratelimit-*`` headers; errors use XRPC error bodies.

Sessions work as on a real PDS: ``createSession`` issues an access JWT (2 hours) and a
refresh JWT (90 days); every other call needs a live access JWT (an expired one is a
400 ``ExpiredToken``, an unknown one a 401 ``InvalidToken``); ``refreshSession`` takes a
live refresh JWT, rotates both and revokes the old refresh JWT. ``logins`` counts
``createSession`` calls per account (identifier), which Bluesky limits to 30 in 5
minutes and 300 a day.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import regex
from aiohttp import web

from tests.support.servers import RunningFake, faulty_answer, take_fault

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "bluesky"
HANDLE = "teacher.bsky.social"
PASSWORD = "abcd-efgh-ijkl-mnop"
OWNER_DID = "did:plc:owner0000000000000000001"
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"


@cache
def recorded_follows() -> list[dict[str, Any]]:
    return json.loads((RECORDED / "get_follows.json").read_text(encoding="utf-8"))["follows"]


def recorded_profile(index: int, *, allow: str | None = None) -> dict[str, Any]:
    """A recorded profile view; ``allow`` overrides its chat setting ("none" removes DMs)."""
    view = copy.deepcopy(recorded_follows()[index % len(recorded_follows())])
    view.pop("viewer", None)
    if allow is not None:
        view.setdefault("associated", {})["chat"] = {"allowIncoming": allow}
    return view


_seq = itertools.count(1)


def make_profile(name: str, *, description: str = "", allow: str | None = "all") -> dict:
    """A profile view in the recorded shape with a fresh DID and handle."""
    view = recorded_profile(0, allow=allow)
    number = next(_seq)
    view.update(did=f"did:plc:fake{number:020d}",
                handle=f"{name.split()[0].lower()}{number}.bsky.social",
                displayName=name, description=description)
    if allow is None:
        view.pop("associated", None)
    return view


def jwt(payload: dict[str, Any]) -> str:
    def part(data: dict) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(payload)}.c2lnbmF0dXJl"


@dataclass
class FakeBluesky:
    handle: str = HANDLE
    password: str = PASSWORD
    did: str = OWNER_DID
    followers: list[dict[str, Any]] = field(default_factory=list)  # newest first
    notifications: list[dict[str, Any]] = field(default_factory=list)  # newest first
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, int | str]] = field(default_factory=list)  # (path part, fault)
    ratelimit_remaining: int = 2999
    ratelimit_reset: datetime = field(
        default_factory=lambda: datetime(2026, 11, 2, 9, 5, tzinfo=UTC))
    # with a clock, the budget is enforced as Bluesky does: once spent, every request is
    # a 429 RateLimitExceeded until the reset, then a new window of 3,000 opens
    limit_clock: Callable[[], datetime] | None = None
    clock: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    url: str = ""
    access_token: str = ""  # the newest access JWT issued
    access_lifetime: float = 7200.0  # seconds, as bsky.social
    refresh_lifetime: float = 90 * 86400.0
    # live tokens: JWT -> its expiry (Unix time); a revoked one is gone
    access_tokens: dict[str, float] = field(default_factory=dict)
    refresh_tokens: dict[str, float] = field(default_factory=dict)
    logins: Counter = field(default_factory=Counter)  # createSession per identifier
    now: Callable[[], float] = time.time  # what tokens expire by (tests: the fake clock)

    # -- what tests set up ---------------------------------------------------------------
    def follow(self, profile: Any) -> dict:
        """Someone follows the owner: a follower and a ``follow`` notification.

        ``profile`` is served exactly as given, even when it is no profile view (a DID
        that is no DID, no handle, a number): what a broken or hostile server sends."""
        self.followers.insert(0, profile)
        self.clock += timedelta(minutes=1)
        indexed = self.clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        did = profile.get("did") if isinstance(profile, dict) else None
        notification = {
            "uri": f"at://{did if isinstance(did, str) else 'did:plc:x'}"
                   f"/app.bsky.graph.follow/3l{next(_seq):011d}",
            "cid": "bafyreihxsmwb5dfrhfwi7kqovbfjipxgkgdukxnjtmtemhchkp4ywdtn5a",
            "author": profile, "reason": "follow", "isRead": False, "indexedAt": indexed,
            "record": {"$type": "app.bsky.graph.follow", "subject": self.did,
                       "createdAt": indexed},
            "labels": [],
        }
        self.notifications.insert(0, notification)
        return notification

    def revoke_sessions(self) -> None:
        """The app password was revoked: no token issued so far is accepted any more."""
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def expire_sessions(self, *, refresh: bool = False) -> None:
        """Every access token (and with ``refresh``, every refresh token) has expired."""
        past = self.now() - 1
        for tokens in (self.access_tokens, self.refresh_tokens) if refresh else \
                (self.access_tokens,):
            for token in tokens:
                tokens[token] = past

    def fail(self, path_part: str, fault: int | str, times: int = 1) -> None:
        """The next ``times`` requests whose path holds ``path_part`` fail with ``fault``:
        an HTTP status, or ``MALFORMED``, ``TRUNCATED`` or ``HANG`` (tests.support.servers)."""
        self.failures.extend([(path_part, fault)] * times)

    # -- HTTP ----------------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        routes = {
            "com.atproto.server.createSession": self._create_session,
            "com.atproto.server.refreshSession": self._refresh_session,
            "app.bsky.notification.listNotifications": self._list_notifications,
            "app.bsky.graph.getFollowers": self._get_followers,
            "app.bsky.actor.getProfile": self._get_profile,
            "chat.bsky.convo.getConvoForMembers": self._get_convo,
            "chat.bsky.convo.sendMessage": self._send_message,
        }
        for nsid, handler in routes.items():
            app.router.add_route("*", f"/xrpc/{nsid}", handler)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path_qs))
        fault = take_fault(self.failures, request.path)
        if fault is not None:
            return self._limits(await faulty_answer(fault, request, handler, self._error))
        if self._budget_spent():
            return self._limits(self._error(429))
        if not request.path.endswith(("createSession", "refreshSession")):
            refused = self._check(request, self.access_tokens)
            if refused is not None:
                return self._limits(refused)
        return self._limits(await handler(request))

    def _check(self, request: web.Request, tokens: dict[str, float]) -> web.Response | None:
        """The PDS's answer to a request whose bearer token is not live (None: it is)."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _xrpc_error(401, "AuthenticationRequired", "Authentication Required")
        expiry = tokens.get(auth.removeprefix("Bearer "))
        if expiry is None:
            return _xrpc_error(401, "InvalidToken", "Token could not be verified")
        if expiry <= self.now():
            return _xrpc_error(400, "ExpiredToken", "Token has expired")
        return None

    def _error(self, status: int) -> web.Response:
        names = {401: "AuthenticationRequired", 429: "RateLimitExceeded",
                 400: "InvalidRequest"}
        return _xrpc_error(status, names.get(status, "InternalServerError"), "failure")

    def _budget_spent(self) -> bool:
        if self.limit_clock is None:
            return False
        now = self.limit_clock()
        if now >= self.ratelimit_reset:  # a new window
            self.ratelimit_remaining = 3000
            self.ratelimit_reset = now + timedelta(minutes=5)
        return self.ratelimit_remaining <= 0

    def _limits(self, response: web.Response) -> web.Response:
        self.ratelimit_remaining = max(0, self.ratelimit_remaining - 1)
        response.headers["ratelimit-limit"] = "3000"
        response.headers["ratelimit-remaining"] = str(self.ratelimit_remaining)
        response.headers["ratelimit-reset"] = str(int(self.ratelimit_reset.timestamp()))
        response.headers["ratelimit-policy"] = "3000;w=300"
        return response

    def _issue(self) -> dict[str, str]:
        """A new access and refresh JWT, live from now on."""
        now = self.now()
        jti = f"{next(_seq):08x}"
        self.access_token = jwt({"scope": "com.atproto.appPassPrivileged", "sub": self.did,
                                 "iat": int(now), "exp": int(now + self.access_lifetime),
                                 "aud": "did:web:fake.pds", "jti": jti})
        refresh = jwt({"scope": "com.atproto.refresh", "sub": self.did, "jti": jti,
                       "exp": int(now + self.refresh_lifetime), "aud": "did:web:fake.pds"})
        self.access_tokens[self.access_token] = now + self.access_lifetime
        self.refresh_tokens[refresh] = now + self.refresh_lifetime
        return {"accessJwt": self.access_token, "refreshJwt": refresh,
                "handle": self.handle, "did": self.did, "didDoc": self._did_doc(),
                "active": True}

    def _did_doc(self) -> dict[str, Any]:
        return {
            "@context": ["https://www.w3.org/ns/did/v1"], "id": self.did,
            "alsoKnownAs": [f"at://{self.handle}"],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                         "serviceEndpoint": self.url}],
        }

    async def _create_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.logins[str(body.get("identifier"))] += 1
        if body.get("identifier") != self.handle or body.get("password") != self.password:
            return _xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return web.json_response(self._issue())

    async def _refresh_session(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.refresh_tokens and auth.count(".") == 2:
            # a refresh JWT the PDS issued but no longer holds (used, or revoked)
            return _xrpc_error(400, "ExpiredToken", "Token has been revoked")
        refused = self._check(request, self.refresh_tokens)
        if refused is not None:
            return refused
        del self.refresh_tokens[request.headers["Authorization"].removeprefix("Bearer ")]
        return web.json_response(self._issue())

    async def _list_notifications(self, request: web.Request) -> web.Response:
        reasons = request.query.getall("reasons", [])
        items = [n for n in self.notifications
                 if not reasons or not isinstance(n, dict) or n.get("reason") in reasons]
        return _paged(request, items, "notifications")

    async def _get_followers(self, request: web.Request) -> web.Response:
        if request.query.get("actor") not in (self.did, self.handle):
            return _xrpc_error(400, "InvalidRequest", "Profile not found")
        subject = recorded_profile(1)
        subject.update(did=self.did, handle=self.handle)
        return _paged(request, self.followers, "followers", subject=subject)

    def _person(self, did: str) -> dict[str, Any] | None:
        for profile in self.followers:
            if isinstance(profile, dict) and profile.get("did") == did:
                return profile
        return None

    async def _get_profile(self, request: web.Request) -> web.Response:
        person = self._person(request.query.get("actor", ""))
        if person is None:
            return _xrpc_error(400, "InvalidRequest", "Profile not found")
        view = dict(person, followersCount=10, followsCount=10, postsCount=3,
                    viewer={"muted": False, "blockedBy": False,
                            "followedBy": f"at://{person['did']}/app.bsky.graph.follow/3x"})
        return web.json_response(view)

    async def _get_convo(self, request: web.Request) -> web.Response:
        if request.headers.get("atproto-proxy") != CHAT_PROXY:
            return _xrpc_error(400, "InvalidRequest", "chat calls need the bsky_chat proxy")
        member = self._person(request.query.get("members", ""))
        if member is None:
            return _xrpc_error(400, "InvalidRequest", "Profile not found")
        if ((member.get("associated") or {}).get("chat") or {}).get("allowIncoming") == "none":
            return _xrpc_error(400, "InvalidRequest", "recipient has disabled incoming messages")
        basic = {k: member[k] for k in ("did", "handle", "displayName") if k in member}
        owner = {"did": self.did, "handle": self.handle}
        return web.json_response({"convo": {
            "id": f"convo-{member['did'][-6:]}", "rev": "222", "members": [owner, basic],
            "muted": False, "unreadCount": 0}})

    async def _send_message(self, request: web.Request) -> web.Response:
        if request.headers.get("atproto-proxy") != CHAT_PROXY:
            return _xrpc_error(400, "InvalidRequest", "chat calls need the bsky_chat proxy")
        body = await request.json()
        problem = message_problem(body)
        if problem:
            return _xrpc_error(400, "InvalidRequest", problem)
        self.messages.append(body)
        return web.json_response({
            "id": f"msg{len(self.messages)}", "rev": "223", "text": body["message"]["text"],
            "sender": {"did": self.did}, "sentAt": "2026-11-02T09:00:00.000Z"})


def message_problem(body: Any) -> str | None:
    """What the sendMessage lexicon rejects: unknown or missing fields, an empty text, or
    more than 1,000 graphemes (10,000 bytes)."""
    if not isinstance(body, dict) or set(body) != {"convoId", "message"}:
        return "Input must have the properties convoId and message only"
    message = body["message"]
    if not isinstance(message, dict) or not set(message) <= {"$type", "text", "facets", "embed"}:
        return "Input/message has unknown properties"
    text = message.get("text")
    if not isinstance(text, str) or not text:
        return "Input/message/text must be a non-empty string"
    if len(regex.findall(r"\X", text)) > 1000 or len(text.encode()) > 10_000:
        return "Input/message/text must not be longer than 1000 graphemes"
    return None


def _paged(request: web.Request, items: list, key: str, **extra) -> web.Response:
    """Cursor pagination as Bluesky does it: an opaque cursor, absent on the last page."""
    start = int(request.query.get("cursor", "0") or 0)
    limit = int(request.query.get("limit", 50))
    page = items[start:start + limit]
    body: dict[str, Any] = {key: page, **extra}
    if start + limit < len(items):
        body["cursor"] = str(start + limit)
    return web.json_response(body)


def _xrpc_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class RunningBluesky(RunningFake):
    """``with RunningBluesky() as fake:`` a fake PDS serving HTTP on 127.0.0.1."""

    fake_type = FakeBluesky
