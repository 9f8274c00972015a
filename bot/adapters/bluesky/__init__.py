"""Bluesky: followers from notifications and ``getFollowers``, welcomes as a chat
message where the person's chat setting allows it (atproto, in ``adapter``)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from bot.adapters.translate import bluesky_profile
from bot.platforms import Platform, Snapshot


def account_settings(credentials: dict[str, Any], external_id: str) -> dict[str, Any]:
    """An account connected by chat (``bot/adapters/account_connector.py``) as the
    configured one."""
    return {"bluesky_handle": credentials["handle"],
            "bluesky_app_password": SecretStr(credentials["app_password"]),
            "bluesky_base_url": credentials["server"]}


PLATFORM = Platform(
    id="bluesky",
    name="Bluesky",
    message_limit=1_000,
    counts="graphemes",
    by_hand="Message them yourself at https://bsky.app/profile/{who} "
            "(or reply to one of their posts if their chat is closed)",
    follow_request="Approve or deny it on Bluesky.",
    respects_closed_dms=True,
    snapshot=Snapshot(id_key="did", page_key="followers", other_page_keys=("follows",),
                      checksum_keys=("handle", "displayName", "description", "associated")),
    translate=bluesky_profile,
    adapter="bot.adapters.bluesky.adapter",
    order=3,
    secrets=("bluesky_app_password",),
    configured_by=("bluesky_app_password",),
    mentioned_by=("bluesky_handle", "bluesky_app_password"),
    account_fields={"bluesky_handle": None, "bluesky_app_password": None,
                    "bluesky_base_url": None},
    polls_connected=True,
    account_settings=account_settings,
    reconnect="connect bluesky <handle> <app password>",
)
