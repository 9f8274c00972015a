"""Mastodon: followers from notifications and the follower list, welcomes as a direct
status mentioning the person (Mastodon.py, in ``adapter``)."""

from __future__ import annotations

from bot.adapters.translate import mastodon_profile
from bot.platforms import Platform, Snapshot

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
)
