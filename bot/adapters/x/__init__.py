"""X (Twitter): followers newest-first from the API or a data archive; welcomes are
never sent by the bot (X forbids automated DMs) but through a compose link (tweepy, in
``adapter``)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from bot.adapters.translate import x_profile
from bot.platforms import Platform, Snapshot


def account_settings(credentials: dict[str, Any], external_id: str) -> dict[str, Any]:
    """An account connected by chat (``bot/adapters/x_oauth.py``) as the configured one."""
    return {"x_user_access_token": SecretStr(credentials["access_token"]),
            "x_user_id": external_id}


PLATFORM = Platform(
    id="x",
    name="X",
    message_limit=10_000,
    follow_request="Approve or deny it on X (Notifications → Follower requests).",
    sends_by="link",
    compose_url="https://x.com/messages/compose?recipient_id={external_id}&text={text}",
    snapshot=Snapshot(id_key="id", page_key="data", checksum_keys=(
        "username", "name", "description", "location", "url", "entities")),
    translate=x_profile,
    adapter="bot.adapters.x.adapter",
    order=1,
    secrets=("x_bearer_token", "x_user_access_token"),
    configured_by=("x_user_access_token", "x_bearer_token"),
    account_fields={"x_bearer_token": None, "x_user_access_token": None, "x_user_id": None},
    polls_connected=True,
    account_settings=account_settings,
    reconnect="connect x",
    pasted_code=True,
    connect="bot.adapters.x_oauth",  # refreshes tokens before they expire
)
