"""Platform JSON → normalised ``Profile``s, and snapshot files → lists of them.

These work on the platforms' own JSON shapes (X API v2 user objects, Mastodon
Account objects, Bluesky profile views, Discord member objects), so live adapters,
``plnbot sync --snapshot`` and tests share one translation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from bot import platforms
from bot.events import Profile


class SnapshotError(Exception):
    """A snapshot file is unreadable or not in the platform's format."""


def x_profile(user: dict[str, Any]) -> Profile:
    url = user.get("url") or ""
    expanded = (((user.get("entities") or {}).get("url") or {}).get("urls") or [{}])[0]
    url = expanded.get("expanded_url") or url
    return Profile(
        platform="x",
        external_id=str(user["id"]),
        handle=user.get("username") or str(user["id"]),
        name=user.get("name") or "",
        bio=user.get("description") or "",
        location=user.get("location") or "",
        url=url,
        raw=user,
    )


def mastodon_profile(account: dict[str, Any]) -> Profile:
    fields = tuple(
        (str(f.get("name", "")), str(f.get("value", ""))) for f in account.get("fields") or []
    )
    return Profile(
        platform="mastodon",
        external_id=str(account["id"]),
        handle=account.get("acct") or account.get("username") or str(account["id"]),
        name=account.get("display_name") or account.get("username") or "",
        bio=account.get("note") or "",
        fields=fields,
        is_bot=bool(account.get("bot")),
        raw=account,
    )


def bluesky_profile(view: dict[str, Any]) -> Profile:
    chat = ((view.get("associated") or {}).get("chat") or {}).get("allowIncoming")
    return Profile(
        platform="bluesky",
        external_id=str(view["did"]),
        handle=view.get("handle") or str(view["did"]),
        name=view.get("displayName") or "",
        bio=view.get("description") or "",
        accepts_dms=None if chat is None else chat != "none",
        raw=view,
    )


def discord_profile(member: dict[str, Any]) -> Profile:
    user = member.get("user") or member
    name = member.get("nick") or user.get("global_name") or user.get("username") or ""
    roles = [r if isinstance(r, str) else str(r.get("name", "")) for r in member.get("roles") or []]
    roles = [r for r in roles if r and not r.isdigit() and r != "@everyone"]
    return Profile(
        platform="discord",
        external_id=str(user["id"]),
        handle=user.get("username") or str(user["id"]),
        name=name,
        bio=f"Roles: {', '.join(roles)}" if roles else "",
        is_bot=bool(user.get("bot")),
        raw=member,
    )


# Each platform's translator and page key, as its registry entry declares them.
TRANSLATORS: Mapping[str, Callable[[dict[str, Any]], Profile]] = platforms.View(
    lambda p: p.translate, only=lambda p: p.translate is not None and p.snapshot is not None)
PAGE_KEYS: Mapping[str, str | None] = platforms.View(
    lambda p: p.keys.page_key, only=lambda p: p.snapshot is not None)


def _items(platform: str, document: Any) -> Iterable[dict[str, Any]]:
    """Accept one page, a list of pages, or a plain list of objects."""
    key = PAGE_KEYS[platform]
    if isinstance(document, dict):
        if key and key in document:
            return document[key] or []
        for other in platforms.get(platform).keys.other_page_keys:
            if other in document:
                return document[other] or []
        raise SnapshotError(
            f"expected a list of {platform} objects"
            + (f" or a page with {key!r}" if key else "")
        )
    if not isinstance(document, list):
        raise SnapshotError(f"expected a list of {platform} objects")
    items: list[dict[str, Any]] = []
    for entry in document:
        if isinstance(entry, dict) and key and key in entry and isinstance(entry[key], list):
            items.extend(entry[key])
        else:
            items.append(entry)
    return items


def profiles_from_document(platform: str, document: Any) -> list[Profile]:
    translate = TRANSLATORS[platform]
    profiles = []
    for index, item in enumerate(_items(platform, document)):
        if not isinstance(item, dict):
            raise SnapshotError(f"entry {index} is not a JSON object")
        try:
            profiles.append(translate(item))
        except KeyError as exc:
            raise SnapshotError(f"entry {index} has no {exc.args[0]!r} field") from None
    return profiles


def load_snapshot(platform: str, path: Path) -> list[Profile]:
    """Read a snapshot file; every problem is a SnapshotError naming the file."""
    if platform not in TRANSLATORS:
        raise SnapshotError(f"unknown platform {platform!r}")
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return profiles_from_document(platform, document)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
