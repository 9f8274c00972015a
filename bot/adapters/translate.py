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
from handlers.untrusted import clean_id, cleaned_profile


class SnapshotError(Exception):
    """A snapshot file is unreadable or not in the platform's format."""


def _text(value: Any) -> str:
    """A text field as the platform should have sent it: anything but text is empty."""
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _id(value: Any, key: str) -> str:
    """The person's id; a missing one is a KeyError, one of the wrong type a SnapshotError."""
    if value is None or value == "":
        raise KeyError(key)
    external_id = clean_id(value)
    if external_id is None:
        raise SnapshotError(f"its {key!r} is not an id (a string or a whole number)")
    return external_id


def x_profile(user: dict[str, Any]) -> Profile:
    entities = user.get("entities")  # (most users have none: no link to look through)
    expanded = _dict((_list(_dict(_dict(entities).get("url")).get("urls"))
                      or [{}])[0]) if entities else {}
    external_id = _id(user.get("id"), "id")
    return cleaned_profile(
        platform="x",
        external_id=external_id,
        handle=_text(user.get("username")) or external_id,
        name=_text(user.get("name")),
        bio=_text(user.get("description")),
        location=_text(user.get("location")),
        url=_text(expanded.get("expanded_url")) or _text(user.get("url")),
        raw=user,
    )


def mastodon_profile(account: dict[str, Any]) -> Profile:
    fields = tuple((_text(f.get("name")), _text(f.get("value")))
                   for f in _list(account.get("fields")) if isinstance(f, dict))
    external_id = _id(account.get("id"), "id")
    return cleaned_profile(
        platform="mastodon",
        external_id=external_id,
        handle=_text(account.get("acct")) or _text(account.get("username")) or external_id,
        name=_text(account.get("display_name")) or _text(account.get("username")),
        bio=_text(account.get("note")),
        fields=fields,
        is_bot=bool(account.get("bot")),
        raw=account,
    )


def bluesky_profile(view: dict[str, Any]) -> Profile:
    chat = _dict(_dict(view.get("associated")).get("chat")).get("allowIncoming")
    external_id = _id(view.get("did"), "did")
    return cleaned_profile(
        platform="bluesky",
        external_id=external_id,
        handle=_text(view.get("handle")) or external_id,
        name=_text(view.get("displayName")),
        bio=_text(view.get("description")),
        accepts_dms=None if chat is None else chat != "none",
        raw=view,
    )


def discord_profile(member: dict[str, Any]) -> Profile:
    user = _dict(member.get("user")) or member
    name = (_text(member.get("nick")) or _text(user.get("global_name"))
            or _text(user.get("username")))
    roles = [r if isinstance(r, str) else _text(_dict(r).get("name"))
             for r in _list(member.get("roles"))]
    roles = [r for r in roles if r and not r.isdigit() and r != "@everyone"]
    external_id = _id(user.get("id"), "id")
    return cleaned_profile(
        platform="discord",
        external_id=external_id,
        handle=_text(user.get("username")) or external_id,
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
        except SnapshotError as exc:
            raise SnapshotError(f"entry {index}: {exc}") from None
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
