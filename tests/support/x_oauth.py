"""X's OAuth 2.0 endpoints (Authorization Code with PKCE) for tests of the real tweepy /
requests-oauthlib client, intercepted with ``responses`` (X's host is fixed).

It refuses what X refuses: a code used twice, for another client or redirect URI, or
with a verifier whose S256 hash is not the challenge; and a refresh token used after it
was rotated away (every refresh returns a new one and retires the old one). Access
tokens it issued answer ``GET /2/users/me`` with the recorded user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import responses

from tests.support.x_api import recorded_me

TOKEN_URL = "https://api.twitter.com/2/oauth2/token"
ME_URL = "https://api.twitter.com/2/users/me"
INVALID_CODE = {"error": "invalid_request",
                "error_description": "Value passed for the authorization code was invalid."}
INVALID_TOKEN = {"error": "invalid_request",
                 "error_description": "Value passed for the token was invalid."}


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class FakeXOAuth:
    client_id: str
    expires_in: int = 7200
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # who approves next (``GET /2/users/me`` answers for each token with the user who
    # approved it): a test changes it to connect a second account
    me: dict[str, Any] = field(default_factory=recorded_me)
    users_by_token: dict[str, dict[str, Any]] = field(default_factory=dict)

    def authorize(self, url: str) -> str:
        """The owner opens the link and approves: the code X puts in the callback."""
        query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        assert query["client_id"] == self.client_id and query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(32)
        self.codes[code] = query
        return code

    def install(self, mock: responses.RequestsMock) -> None:
        mock.add_callback(responses.POST, TOKEN_URL, callback=self._token)
        mock.add_callback(responses.GET, ME_URL, callback=self._me)

    def _token(self, request) -> tuple[int, dict, str]:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.requests.append(form)
        if form.get("client_id") != self.client_id:
            return 401, {}, json.dumps({"error": "unauthorized_client",
                                        "error_description": "Missing valid authorization "
                                                             "header"})
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {}, json.dumps(INVALID_TOKEN)
            self.refresh_tokens.discard(form["refresh_token"])
            return self._issue()
        grant = self.codes.pop(form.get("code", ""), None)
        if (grant is None or grant["redirect_uri"] != form.get("redirect_uri")
                or grant["code_challenge"] != s256(form.get("code_verifier", ""))):
            return 400, {}, json.dumps(INVALID_CODE)
        return self._issue()

    def _issue(self) -> tuple[int, dict, str]:
        access, refresh = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
        self.users_by_token[access] = self.me
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return 200, {}, json.dumps({
            "token_type": "bearer", "expires_in": self.expires_in, "access_token": access,
            "scope": "tweet.read users.read follows.read offline.access",
            "refresh_token": refresh})

    def _me(self, request) -> tuple[int, dict, str]:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.access_tokens:
            return 401, {}, json.dumps({"title": "Unauthorized", "type": "about:blank",
                                        "status": 401, "detail": "Unauthorized"})
        return 200, {}, json.dumps({"data": self.users_by_token[token]})
