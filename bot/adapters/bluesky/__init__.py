"""Bluesky: followers from notifications and ``getFollowers``, welcomes as a chat
message where the person's chat setting allows it (atproto, in ``adapter``)."""

from __future__ import annotations

from bot.adapters.translate import bluesky_profile
from bot.platforms import Platform, Snapshot

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
)
