"""A stand-in for the X API v2 over HTTP, built from recorded responses.

tweepy's host is hard-coded, so requests are intercepted in aiohttp (aioresponses) and
answered with recorded payloads and headers (tests/fixtures/recorded/x/). It keeps X's
rate windows itself and counts every request, so tests can prove a poll costs one
request and that no request ever exceeded a window.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace
from typing import Any

import yaml
from aiohttp import ClientResponse
from aioresponses import CallbackResult, aioresponses

from tests.conftest import RECORDED
from tests.support.fakes import FakeClock
from tests.support.servers import HANG

API = r"^https://api\.twitter\.com/2/users/"
DROP_HEADERS = {"content-encoding", "content-length", "set-cookie", "transfer-encoding"}
TIER_403 = {
    "client_id": "12345678",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use "
              "keys and tokens from a Twitter developer App that is attached to a Project. "
              "You can create a project via the developer portal.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}
UNAUTHORIZED_401 = {"title": "Unauthorized", "type": "about:blank", "status": 401,
                    "detail": "Unauthorized"}
UNAVAILABLE_503 = {"title": "Service Unavailable", "detail": "Service Unavailable",
                   "type": "about:blank", "status": 503}


def _cassette(name: str) -> list[dict]:
    return copy.deepcopy(_parsed(name))


@cache
def _parsed(name: str) -> list[dict]:
    return yaml.safe_load((RECORDED / "x" / name).read_text())["interactions"]


def _body(response: dict) -> Any:
    raw = response["body"]["string"]
    if isinstance(raw, bytes):  # test_client_* cassettes keep the gzip bytes
        raw = gzip.decompress(raw)
    return json.loads(raw)


def recorded_followers() -> list[dict]:
    """Every recorded follower (both cassettes), newest first, without duplicates."""
    users: dict[str, dict] = {}
    for name in ("test_asyncclient_get_users_followers.yaml",
                 "test_client_get_users_followers.yaml"):
        for interaction in _cassette(name):
            for user in _body(interaction["response"]).get("data", []):
                users.setdefault(user["id"], user)
    return list(users.values())


def recorded_me() -> dict:
    return _body(_cassette("test_asyncclient_get_me.yaml")[0]["response"])["data"]


def recorded_headers() -> dict[str, str]:
    response = _cassette("test_asyncclient_get_users_followers.yaml")[0]["response"]
    return {k: v[0] for k, v in response["headers"].items() if k.lower() not in DROP_HEADERS}


class RecordedResponse(ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that aiohttp
    3.12+ requires; a request that was already sent only needs its output size."""

    def __init__(self, *args, stream_writer=None, **kwargs) -> None:
        writer = stream_writer or SimpleNamespace(output_size=0)
        super().__init__(*args, stream_writer=writer, **kwargs)


@dataclass
class Window:
    limit: int
    used: int = 0
    reset: float = 0.0


@dataclass
class FakeXApi:
    mocked: aioresponses
    clock: FakeClock
    followers: list[dict] = field(default_factory=recorded_followers)
    page_size: int = 1000
    followers_limit: int = 15
    me: dict = field(default_factory=recorded_me)
    count: int | None = None  # public_metrics.followers_count; None = len(followers)
    requests: list[tuple[str, dict[str, str], dict]] = field(default_factory=list)
    failures: dict[str, list[tuple[int, dict, dict] | None]] = field(default_factory=dict)
    over_limit: int = 0  # 429s this fake had to serve because a window was exceeded

    def __post_init__(self) -> None:
        self.windows = {"followers": Window(self.followers_limit), "user": Window(300),
                        "me": Window(75)}
        self.headers = recorded_headers()
        for pattern, handler in ((r"me", self._me), (r"\d+/followers", self._followers),
                                 (r"\d+", self._user)):
            self.mocked.get(re.compile(API + pattern + r"(\?.*)?$"), callback=handler,
                            repeat=True)

    # what tests look at ------------------------------------------------------------
    def calls(self, endpoint: str) -> list[dict[str, str]]:
        return [query for name, query, _ in self.requests if name == endpoint]

    def fail(self, endpoint: str, status: int, body: dict, times: int = 1,
             headers: dict | None = None, after: int = 0) -> None:
        """The next ``times`` requests to ``endpoint`` (after ``after`` normal ones) fail."""
        queue = self.failures.setdefault(endpoint, [])
        queue.extend([None] * after + [(status, body, headers or {})] * times)

    def authorizations(self) -> set[str]:
        return {headers.get("Authorization", "") for _, _, headers in self.requests}

    # the endpoints -----------------------------------------------------------------
    def _me(self, url, **kwargs):
        return self._serve("me", url, kwargs, lambda: {"data": self._owner()})

    def _user(self, url, **kwargs):
        return self._serve("user", url, kwargs, lambda: {"data": self._owner()})

    def _followers(self, url, **kwargs):
        return self._serve("followers", url, kwargs, lambda: self._page(url.query))

    def _owner(self) -> dict:
        count = len(self.followers) if self.count is None else self.count
        return {**self.me, "public_metrics": {"followers_count": count, "following_count": 7,
                                              "tweet_count": 3, "listed_count": 0}}

    def _page(self, query) -> dict:
        start = int(query.get("pagination_token", "0").removeprefix("page") or 0)
        users = self.followers[start:start + self.page_size]
        meta: dict[str, Any] = {"result_count": len(users)}
        if start + self.page_size < len(self.followers):
            meta["next_token"] = f"page{start + self.page_size}"
        return {"data": users, "meta": meta} if users else {"meta": meta}

    def _serve(self, endpoint, url, kwargs, payload) -> CallbackResult:
        self.requests.append((endpoint, dict(url.query), dict(kwargs.get("headers") or {})))
        window = self._window(endpoint)
        if window.used >= window.limit:
            self.over_limit += 1
            return self._result(429, {"title": "Too Many Requests", "status": 429}, window)
        window.used += 1
        queued = self.failures.get(endpoint)
        failure = queued.pop(0) if queued else None
        if failure:
            status, body, headers = failure
            if body == HANG:  # what aiohttp raises when X does not answer in time
                raise TimeoutError("the fake X API did not answer")
            return self._result(status, body, window, headers)
        return self._result(200, payload(), window)

    def _window(self, endpoint: str) -> Window:
        window = self.windows[endpoint]
        now = self.clock().timestamp()
        if now >= window.reset:
            window.used, window.reset = 0, now + 15 * 60
        return window

    def _result(self, status, body, window, extra=None) -> CallbackResult:
        headers = {**self.headers, "x-rate-limit-limit": str(window.limit),
                   "x-rate-limit-remaining": str(max(0, window.limit - window.used)),
                   "x-rate-limit-reset": str(int(window.reset)),
                   "content-type": "application/json; charset=utf-8", **(extra or {})}
        text = body if isinstance(body, str) else json.dumps(body)  # a str: sent as it is
        return CallbackResult(status=status, body=text, headers=headers,
                              response_class=RecordedResponse)
