"""Platform JSON → normalised ``Profile``s, and snapshot files → lists of them.

These work on the platforms' own JSON shapes (X API v2 user objects, Mastodon
Account objects, Bluesky profile views, Discord member objects), so live adapters,
``plnbot sync --snapshot`` and tests share one translation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot import platforms
from bot.events import Profile, Unreadable
from handlers.untrusted import CAPS, clean_id, clean_text, cleaned_profile

# What each platform's ids look like: X's are 64-bit numbers written in decimal (1–20
# ASCII digits); a Bluesky DID is "did:<method>:<method-specific id>" (W3C DID syntax as
# atproto restricts it). Mastodon ids are opaque strings (forks use letters too).
X_ID = re.compile(r"[0-9]{1,20}")
DID = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]")
ID_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    "x": (X_ID, "an X id (1–20 digits)"), "bluesky": (DID, "a DID (did:plc:…)")}


# platforms whose ids are never plain digits (a DID); every other one accepts 1–20 digits
DIGITS_REFUSED = frozenset(p for p, (shape, _) in ID_SHAPES.items()
                           if not shape.fullmatch("12345678901234567890"))


def has_shape(platform: str, value: Any, external_id: str) -> bool:
    """Whether an id as written (``value``; ``external_id`` is it cleaned) has the form
    the platform gives its ids: "12\n" is no X id even though it cleans to "12"."""
    shape = ID_SHAPES.get(platform)
    return shape is None or shape[0].fullmatch(
        value if isinstance(value, str) else external_id) is not None


class SnapshotError(Exception):
    """A snapshot file is unreadable or not in the platform's format."""


def _text(value: Any) -> str:
    """A text field as the platform should have sent it: anything but text is empty."""
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _id(value: Any, key: str, platform: str = "") -> str:
    """The person's id; a missing one is a KeyError, one of the wrong type or shape a
    SnapshotError (an X id with a newline or a DID that is no DID would make a second
    contact for the same person, or one nobody can look up)."""
    if (type(value) is str and value.isdigit() and value.isascii() and len(value) <= 20
            and platform not in DIGITS_REFUSED):
        return value  # ASCII digits (X's ids, Discord's): what the checks below pass as is
    if value is None or value == "":
        raise KeyError(key)
    external_id = clean_id(value)
    if external_id is None or not has_shape(platform, value, external_id):
        what = ID_SHAPES.get(platform, (None, "an id (a string or a whole number)"))[1]
        raise SnapshotError(f"its {key!r} is not {what}")
    return external_id


def x_profile(user: dict[str, Any]) -> Profile:
    entities = user.get("entities")  # (most users have none: no link to look through)
    expanded = _dict((_list(_dict(_dict(entities).get("url")).get("urls"))
                      or [{}])[0]) if entities else {}
    external_id = _id(user.get("id"), "id", "x")
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
    external_id = _id(view.get("did"), "did", "bluesky")
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


# Where each platform names a person's handle in its JSON, for telling the owner who
# could not be read (and for keeping them in a sync) when the rest cannot be read.
HANDLE_KEYS = {"x": ("username",), "mastodon": ("acct", "username"), "bluesky": ("handle",),
               "discord": ("username",)}
ID_KEYS = {"x": "id", "mastodon": "id", "bluesky": "did", "discord": "id"}


def read_one(platform: str, item: Any,
             translate: Callable[[dict[str, Any]], Profile] | None = None,
             *, what: str = "follower") -> Profile | Unreadable:
    """One entry of a live poll as a Profile, or as an ``Unreadable`` saying why not.

    Never raises for anything the platform could send, so one entry cannot fail the
    poll that brought it (``translate`` defaults to the platform's translator)."""
    translate = translate or TRANSLATORS[platform]
    if not isinstance(item, dict):
        return unreadable(platform, item, f"the {what} sent is not a JSON object", what=what)
    try:
        return translate(item)
    except KeyError as exc:
        reason = f"it has no {exc.args[0]!r}"
    except (SnapshotError, TypeError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
    return unreadable(platform, item, reason, what=what)


def read_each(platform: str, items: Iterable[Any],
              translate: Callable[[dict[str, Any]], Profile] | None = None,
              *, what: str = "follower") -> tuple[list[Profile], list[Unreadable]]:
    """``read_one`` over a page: the readable profiles in order, and the unreadable."""
    profiles: list[Profile] = []
    skipped: list[Unreadable] = []
    for item in items:
        read = read_one(platform, item, translate, what=what)
        if isinstance(read, Profile):
            profiles.append(read)
        else:
            skipped.append(read)
    return profiles, skipped


def unreadable(platform: str, item: Any, reason: str, *, what: str = "follower") -> Unreadable:
    """What can still be said about an entry that could not be read: its handle and id
    where those are readable, and a key that stays the same while the entry does."""
    person = item if isinstance(item, dict) else {}
    handle = next((h for key in HANDLE_KEYS.get(platform, ())
                   if (h := clean_text(person.get(key), CAPS["handle"]))), "")
    external_id = clean_id(person.get(ID_KEYS.get(platform, "id")))
    label = f"@{handle.lstrip('@')[:100]}" if handle else (
        f"a {what} with the id {external_id[:40]}" if external_id
        else f"a {what} without a readable id or handle")
    identity = ([person.get(ID_KEYS.get(platform, "id")), handle] if person
                else [item])
    if not any(identity):
        identity = [item]
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=repr)[:100_000]
                            .encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return Unreadable(platform=platform, label=label, key=f"{platform}:{digest}",
                      reason=clean_text(reason, 200), external_id=external_id,
                      handle=handle or None)


def unplaced(platform: str, notification: Any, person_key: str, reason: str) -> Unreadable:
    """A notification a poll cannot place against its cursor (no readable id, or no
    readable time): left out of the poll, since it could not be told apart from the
    next one, and told to the owner once as an unreadable entry, naming the person in
    it where that can be read (``person_key``: "account", "author"). Keyed apart from
    that person's profile being unreadable, so neither silences the other."""
    person = notification.get(person_key) if isinstance(notification, dict) else None
    entry = (unreadable(platform, person, reason) if isinstance(person, dict) else
             unreadable(platform, notification, reason, what="notification"))
    return replace(entry, key=f"{entry.key}:unplaced")


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
