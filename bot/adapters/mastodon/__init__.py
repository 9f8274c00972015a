"""Mastodon: followers from notifications and the follower list, welcomes as a direct
status mentioning the person (Mastodon.py, in ``adapter``)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from bot.adapters.translate import mastodon_profile
from bot.platforms import Platform, Snapshot


def account_settings(credentials: dict[str, Any], external_id: str) -> dict[str, Any]:
    """An account connected by chat (``bot/adapters/account_connector.py``) as the
    configured one."""
    return {"mastodon_base_url": credentials["instance"],
            "mastodon_access_token": SecretStr(credentials["access_token"])}


PLATFORM = Platform(
    id="mastodon",
    name="Mastodon",
    message_limit=500,  # the instance's own limit is asked for when sending
    mention_counts=True,
    by_hand="Send it yourself as a private mention to @{who}{profile}",
    follow_request="Approve or deny it on Mastodon (Notifications → Follow requests).",
    snapshot=Snapshot(id_key="id", checksum_keys=(
        "acct", "username", "display_name", "note", "fields", "bot")),
    translate=mastodon_profile,
    adapter="bot.adapters.mastodon.adapter",
    order=2,
    secrets=("mastodon_access_token",),
    configured_by=("mastodon_access_token",),
    mentioned_by=("mastodon_base_url", "mastodon_access_token"),
    account_fields={"mastodon_base_url": None, "mastodon_access_token": None,
                    "mastodon_streaming": False},
    polls_connected=True,
    account_settings=account_settings,
    reconnect="connect mastodon <instance>",
    pasted_code=True,
)
