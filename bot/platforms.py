"""The platform registry: what the rest of plnbot knows about each platform, declared once.

Each platform declares one ``Platform`` as ``PLATFORM`` in its adapter package's
``__init__`` (``bot/adapters/<id>/__init__.py``), which imports no platform SDK; the SDK
code lives in that package's other modules and is imported only when a source or sender
is built. This module finds the declarations by looking at the packages under
``bot/adapters/``, so adding a platform is its package, its tests and its
``config.example.env`` lines; nothing here or in ``handlers/`` names a platform.

Handlers and storage read platforms through :func:`get` (an unknown id gets a plain
default, so old rows of a removed platform still display).
"""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from datetime import datetime

    from bot.config import Settings
    from bot.events import Profile
    from bot.ports import Source, WelcomeSender

Translator = Callable[[dict[str, Any]], "Profile"]
# one account connected by chat: (its stored credentials, its external id) -> the Settings
# fields that make it the configured account
AccountSettings = Callable[[dict[str, Any], str], dict[str, Any]]
ADAPTERS = "bot.adapters"


@dataclass(frozen=True)
class Snapshot:
    """How the platform's own follower-list JSON reads (``plnbot sync --snapshot``):
    the key of a person's id, the key of a page's list (None: a plain list), other page
    keys accepted, the key that wraps the person (Discord members wrap their user), and
    the fields whose change means "their profile changed"."""

    id_key: str
    page_key: str | None = None
    other_page_keys: tuple[str, ...] = ()
    person_key: str | None = None
    checksum_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Platform:
    """One platform as the core sees it. Only ``id`` and ``name`` are required."""

    id: str
    name: str
    # one direct message: its limit, what the limit counts, and whether the "@person "
    # the sender puts in front of the text counts towards it (Mastodon)
    message_limit: int = 2_000
    counts: Literal["characters", "graphemes"] = "characters"
    mention_counts: bool = False
    # handles are shown as "@jane" unless the platform's handles are plain names (Discord)
    at_handles: bool = True
    # the person's side of the connection ("follower", or "member" of a server)
    connection_kind: str | None = None
    # how to send a welcome by hand, with {who} (their handle without "@") and
    # {profile} (" (their profile URL)" or ""); and where to decide a follow request
    by_hand: str = "Send it yourself to {who}"
    follow_request: str = ""
    # "api": a WelcomeSender delivers it; "link": the owner sends it through
    # ``compose_url`` (X forbids automated DMs)
    sends_by: Literal["api", "link"] = "api"
    compose_url: str = ""  # with {external_id} and {text}, both URL-quoted
    send_choices: tuple[str, ...] = ()  # ``send <draft> dm``: the sender's ``via``
    # whether a person who said they take no DMs (``Handle.accepts_dms is False``) can
    # be written to at all
    respects_closed_dms: bool = False
    snapshot: Snapshot | None = None
    translate: Translator | None = None
    # the module with ``build_source(settings)`` and/or ``build_sender(settings)``
    adapter: str | None = None
    # Settings fields holding this platform's secrets (tokens, passwords)
    secrets: tuple[str, ...] = ()
    # the account the operator configures in the environment: the Settings fields any of
    # which, set, means it is configured (then its owner cannot also ``connect`` it by
    # chat); the prefix its settings share ("MASTODON_"; default: the id upper-cased);
    # and the fields with their "not configured" values, cleared when the process polls
    # an account connected by chat instead (``bot/connected.py``)
    configured_by: tuple[str, ...] = ()
    # the Settings fields any of which, set, means the operator began configuring this
    # platform (default: ``configured_by``): only then is its adapter, and so its SDK,
    # imported to build a source or sender, or to say which setting is missing. A process
    # that uses no platform never imports discord.py, atproto, Mastodon.py or tweepy
    # (about 0.6 s of every ``plnbot console`` start)
    mentioned_by: tuple[str, ...] | None = None
    settings_prefix: str = ""
    account_fields: dict[str, Any] = field(default_factory=dict)
    # accounts connected by chat (``connect …``): whether ``bot/connected.py`` polls them
    # (a Discord server's members arrive over the gateway instead), the Settings fields
    # one account's credentials stand for (``account_settings``), the chat command that
    # connects it again once the platform stops accepting the bot's access, whether the
    # connection finishes with a code the owner pastes back, and the module that may
    # offer ``async refreshed(settings, credentials, *, now) -> dict | None`` (new
    # credentials before a poll, stored at once; None while the old ones are fresh)
    polls_connected: bool = False
    account_settings: AccountSettings | None = None
    reconnect: str = ""
    pasted_code: bool = False
    connect: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    order: int = 100  # where it comes in lists (the first platforms kept their order)

    # -- what the core asks ---------------------------------------------------------------
    @property
    def keys(self) -> Snapshot:
        """The snapshot keys (plain defaults for a platform without snapshots)."""
        return self.snapshot or Snapshot(id_key="id")

    def length(self, text: str) -> int:
        """What the platform counts: graphemes or characters."""
        if self.counts == "graphemes":
            import regex

            return len(regex.findall(r"\X", text))
        return len(text)

    def limit_for(self, handle: str) -> int:
        """Room left for the welcome text to ``handle``."""
        if self.mention_counts:
            return self.message_limit - len(f"@{handle.lstrip('@')} ")
        return self.message_limit

    def shown_handle(self, handle: str) -> str:
        handle = handle.lstrip("@")
        return f"@{handle}" if self.at_handles else handle

    def by_hand_hint(self, who: str, profile_url: str = "") -> str:
        profile = f" ({profile_url})" if profile_url.startswith("http") else ""
        return self.by_hand.format(who=who.lstrip("@"), profile=profile)

    def compose_link(self, *, external_id: str, text: str) -> str | None:
        if self.sends_by != "link" or not self.compose_url:
            return None
        return self.compose_url.format(external_id=quote(external_id, safe=""),
                                       text=quote(text, safe=""))

    def checksum(self, item: dict[str, Any]) -> int | None:
        """A checksum of the profile fields that matter, straight from platform JSON
        (None for a platform without snapshot keys)."""
        if self.snapshot is None:
            return None
        values = "\x1f".join(str(item.get(key) or "") for key in self.snapshot.checksum_keys)
        return zlib.crc32(values.encode("utf-8", "surrogatepass"))  # lone surrogates too

    @property
    def settings_names(self) -> str:
        """How its environment settings are named, for messages ("MASTODON_…")."""
        return f"{self.settings_prefix or self.id.upper() + '_'}…"

    def configured_in(self, settings: Settings) -> bool:
        """Whether the operator configured this platform's account in the environment."""
        return any(getattr(settings, name, None) for name in self.configured_by)

    def mentioned_in(self, settings: Settings) -> bool:
        """Whether any of this platform's settings is set (see ``mentioned_by``)."""
        names = self.configured_by if self.mentioned_by is None else self.mentioned_by
        return any(getattr(settings, name, None) for name in names)

    def build_source(self, settings: Settings, **options: Any) -> Source | None:
        """The configured source, or None when the platform is not configured. Every
        platform's builder takes the same keywords (``clock``, ``sleep``)."""
        if not self.mentioned_in(settings):
            return None
        build = self._adapter_function("build_source")
        return build(settings, **options) if build is not None else None

    async def refreshed(self, settings: Settings, credentials: dict[str, Any], *,
                        now: datetime) -> dict[str, Any] | None:
        """A connected account's new credentials when they are about to expire, else
        None (a platform whose ``connect`` module offers no ``refreshed``: never)."""
        if self.connect is None:
            return None
        refresh = getattr(importlib.import_module(self.connect), "refreshed", None)
        if refresh is None:
            return None
        fresh: dict[str, Any] | None = await refresh(settings, credentials, now=now)
        return fresh

    def build_sender(self, settings: Settings) -> WelcomeSender | None:
        """A welcome sender for a process that polls nothing (``plnbot console``)."""
        if not self.mentioned_in(settings):
            return None
        build = self._adapter_function("build_sender")
        return build(settings) if build is not None else None

    def _adapter_function(self, name: str) -> Callable[..., Any] | None:
        if self.adapter is None:
            return None
        return getattr(importlib.import_module(self.adapter), name, None)


@cache
def registry() -> dict[str, Platform]:
    """Every declared platform by id, in a stable order (the packages' names)."""
    found: dict[str, Platform] = {}
    package = importlib.import_module(ADAPTERS)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:
            continue
        declared = getattr(importlib.import_module(f"{ADAPTERS}.{module.name}"), "PLATFORM",
                           None)
        if isinstance(declared, Platform):
            found[declared.id] = declared
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def get(platform_id: str) -> Platform:
    """The platform ``platform_id``; an unknown one gets a plain default."""
    return registry().get(platform_id) or Platform(id=platform_id, name=platform_id)


def ids() -> tuple[str, ...]:
    return tuple(registry())


def name(platform_id: str) -> str:
    return get(platform_id).name


def polled_connected() -> tuple[str, ...]:
    """The platforms whose accounts connected by chat ``bot/connected.py`` polls."""
    return tuple(p.id for p in registry().values() if p.polls_connected)


def all_account_fields() -> dict[str, Any]:
    """Every platform's environment-account fields with their "not configured" values."""
    return {k: v for p in registry().values() for k, v in p.account_fields.items()}


def all_secrets_fields() -> tuple[str, ...]:
    return tuple(f for p in registry().values() for f in p.secrets)


class View(Mapping[str, Any]):
    """A read-only ``{platform id: something}`` computed from the registry when read
    (``TRANSLATORS``, ``PAGE_KEYS``): old dict-shaped call sites keep working."""

    def __init__(self, pick: Callable[[Platform], Any], *,
                 only: Callable[[Platform], bool] = lambda p: True) -> None:
        self._pick, self._only = pick, only

    def _items(self) -> dict[str, Any]:
        return {p.id: self._pick(p) for p in registry().values() if self._only(p)}

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())
