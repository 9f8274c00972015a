"""Normalised events: what adapters hand to the dispatcher.

Adapters (the only code that knows a platform SDK) translate platform objects into
these plain dataclasses; handlers never see anything platform-specific except the
``raw`` payload kept for profile understanding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PLATFORMS = ("x", "mastodon", "bluesky", "discord", "console")


@dataclass(frozen=True)
class Profile:
    """A person as one platform shows them."""

    platform: str
    external_id: str
    handle: str
    name: str = ""
    bio: str = ""
    location: str = ""
    url: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    accepts_dms: bool | None = None
    is_bot: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Event:
    """Base class: every event is addressed to one owner."""

    owner_ref: str


@dataclass
class NewConnection(Event):
    """Someone connected (followed, joined) right now, as seen by a live source."""

    profile: Profile
    kind: str = "follower"
    at: datetime | None = None


@dataclass
class ArrivalsReceived(Event):
    """Live arrivals that came together, written in one transaction (``bot.arrivals``).

    Same meaning as each of its ``NewConnection`` events on its own: every person is
    recorded, drafted a welcome and told about; newcomers in the order they arrived.
    """

    arrivals: list[NewConnection]


@dataclass
class ConnectionLeft(Event):
    """A live source saw someone leave (e.g. Discord's on_member_remove)."""

    profile: Profile
    kind: str = "member"
    cause: str | None = None


@dataclass
class SnapshotReceived(Event):
    """A list of the account's current connections (complete unless ``complete`` is False)."""

    platform: str
    # a list, or a lazy snapshot file (``fingerprints()`` and ``profiles(wanted)``)
    profiles: Iterable[Profile]
    complete: bool = True
    kind: str = "follower"
    account_external_id: str = ""
    account_handle: str = ""
    # Send a ``reply`` summarising the sync even when nothing else is said (``plnbot
    # sync``); live sources polling every few minutes pass False to stay quiet.
    summary: bool = True


@dataclass
class CommandReceived(Event):
    """A line the owner wrote to the bot."""

    text: str
    message_id: str | None = None


@dataclass
class Tick(Event):
    """A periodic trigger from the scheduler ("sweep", "digest", …)."""

    name: str = "sweep"


@dataclass
class ConnectionsSevered(Event):
    """The platform itself cut connections (e.g. Mastodon ``severed_relationships``:
    a domain block or an account suspension), so they are not people leaving."""

    platform: str
    external_ids: list[str]
    cause: str
    kind: str = "follower"


@dataclass
class FollowRequested(Event):
    """Someone asked to follow a locked account; the owner decides on the platform."""

    profile: Profile


@dataclass
class SourceChecked(Event):
    """How one poll of a live source went, so its sync state and problems are durable.

    ``problem`` is a short stable code ("tier", "auth", "server", "config") or None when
    the poll worked; ``text`` is what the owner should read about it. The owner hears
    about a problem once, not on every poll, and once more when it is over.
    """

    platform: str
    account_external_id: str = ""
    account_handle: str = ""
    followers_count: int | None = None
    problem: str | None = None
    text: str = ""


@dataclass
class NetworkImported(Event):
    """People from a platform's data export: already in the network, so never drafted.

    Importing the same export twice changes nothing; an import never removes anyone
    (an export is a dated picture, possibly older than what live syncs have seen).
    """

    platform: str
    followers: list[Profile]
    following: list[Profile]
    source: str = "archive"
    account_external_id: str = ""
    account_handle: str = ""
