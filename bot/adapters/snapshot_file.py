"""A follower-list file read lean, for ``plnbot sync`` on accounts of any size.

``translate.load_snapshot`` turns every entry into a ``Profile``; for a million
followers that costs seconds and hundreds of megabytes, although a sync only needs
every person's id (and a checksum to notice changed profiles) plus full profiles of
the few who are new. ``SnapshotFile`` keeps the file's text, decodes it one entry (or
one page) at a time to validate it and note each person's id, checksum and place, and
translates entries to ``Profile``s only when the sync engine asks for them.

The accepted shapes are the same as ``load_snapshot``'s: one page, a list of pages,
or a list of objects.
"""

from __future__ import annotations

import json
import zlib
from array import array
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from bot import platforms
from bot.adapters.translate import (
    ID_SHAPES,
    PAGE_KEYS,
    TRANSLATORS,
    SnapshotError,
    has_shape,
    profiles_from_document,
)
from bot.events import Profile
from handlers.untrusted import CAPS, clean_id

DECODER = json.JSONDecoder()
WHITESPACE = " \t\r\n"
# What a person's id is and what makes their profile "changed", per platform. The
# checksum covers the fields plnbot shows and understands, not counters.
# (Both come from each platform's ``Snapshot`` in the registry.)
ID_KEYS = platforms.View(lambda p: p.keys.id_key, only=lambda p: p.snapshot is not None)
CHECKSUM_KEYS = platforms.View(lambda p: p.keys.checksum_keys,
                               only=lambda p: p.snapshot is not None)


def person_of(platform: str, item: Any) -> dict:
    """The object that holds the id (a Discord member wraps its user)."""
    if not isinstance(item, dict):
        raise SnapshotError("an entry is not a JSON object")
    wrapper = platforms.get(platform).keys.person_key
    if wrapper:
        return item.get(wrapper) or item
    return item


def external_id_of(platform: str, item: Any) -> str:
    value = person_of(platform, item).get(ID_KEYS[platform])
    if value is None or value == "":
        raise SnapshotError(f"an entry has no {ID_KEYS[platform]!r} field")
    external_id = clean_id(value)
    if external_id is None:
        raise SnapshotError(f"an entry's {ID_KEYS[platform]!r} is not an id (a string or a "
                            f"whole number): {str(value)[:40]!r}")
    if not has_shape(platform, value, external_id):
        raise SnapshotError(f"an entry's {ID_KEYS[platform]!r} is not "
                            f"{ID_SHAPES[platform][1]}: {str(value)[:40]!r}")
    return external_id


def plain_id(value: Any) -> str:
    """The id as ``clean_id`` gives it, fast for the usual short printable text or number;
    anything else is a KeyError, which the scan turns into the clear message."""
    kind = type(value)
    if kind is str and 0 < len(value) <= CAPS["id"] and value.isprintable() and value.strip():
        return value.strip()
    cleaned = clean_id(value)
    if cleaned is None:
        raise KeyError(value)
    return cleaned


def is_bot(platform: str, item: dict) -> bool:
    return bool(person_of(platform, item).get("bot"))


def raw_checksum(platform: str, item: dict) -> int:
    """A checksum of the profile fields that matter, straight from platform JSON."""
    checksum = platforms.get(platform).checksum(item)
    if checksum is None:
        raise SnapshotError(f"unknown platform {platform!r}")
    return checksum


class SnapshotFile:
    """A snapshot the sync engine reads as ids first, profiles on demand."""

    def __init__(self, platform: str, text: str) -> None:
        if platform not in TRANSLATORS:
            raise SnapshotError(f"unknown platform {platform!r}")
        self.platform = platform
        self._text = text
        self._checksums: dict[str, int] = {}  # in file order; bots and repeats left out
        self._starts, self._indexes = array("q"), array("q")  # where each person is
        self._scan()

    def __len__(self) -> int:
        return len(self._checksums)

    def __iter__(self) -> Iterator[Profile]:
        return self.profiles(self._checksums)

    def fingerprints(self) -> dict[str, int]:
        return self._checksums

    def profiles(self, wanted: Collection[str]) -> Iterator[Profile]:
        """``Profile``s of the ``wanted`` ids, in file order (pages decoded once each)."""
        translate = TRANSLATORS[self.platform]
        page_start: int | None = None
        decoded: Any = None
        items: list = []
        for position, external_id in enumerate(self._checksums):
            if external_id not in wanted:
                continue
            start, index = self._starts[position], self._indexes[position]
            if page_start != start:  # each page decoded, and its items found, once
                page_start, decoded = start, DECODER.raw_decode(self._text, start)[0]
                items = items_of_page(self.platform, decoded) if index >= 0 else []
            yield translate(decoded if index < 0 else items[index])

    # reading the file once

    def _scan(self) -> None:
        first = skip_space(self._text, 0)
        if self._text.startswith("{", first):
            self._page(self._decode(first))
            return
        if not self._text.startswith("[", first):
            raise SnapshotError(f"expected a list of {self.platform} objects")
        for start, value in self._elements(first):
            if is_page(self.platform, value):
                self._add_page(start, value)
            else:
                self._add(start, -1, value)

    def _elements(self, position: int) -> Iterator[tuple[int, Any]]:
        """(start, value) of each element of the top-level list."""
        position = skip_space(self._text, position + 1)
        if self._text.startswith("]", position):
            return
        while True:
            value, end = self._decode(position)
            yield position, value
            position = skip_space(self._text, end)
            if self._text.startswith("]", position):
                return
            if not self._text.startswith(",", position):
                raise SnapshotError(f"not valid JSON (near character {position})")
            position = skip_space(self._text, position + 1)

    def _decode(self, position: int) -> tuple[Any, int]:
        try:
            return DECODER.raw_decode(self._text, position)
        except json.JSONDecodeError as exc:
            raise SnapshotError(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None

    def _page(self, decoded: tuple[Any, int]) -> None:
        value, _ = decoded
        if not is_page(self.platform, value):
            # an object that is no page: the general reader says what is wrong with it
            profiles_from_document(self.platform, value)
            raise SnapshotError(f"expected a list of {self.platform} objects")
        self._add_page(skip_space(self._text, 0), value)

    def _add_page(self, start: int, page: dict) -> None:
        self._add_items(start, items_of_page(self.platform, page), paged=True)

    def _add(self, start: int, index: int, item: Any) -> None:
        self._add_items(start, [item], paged=False)

    def _add_items(self, start: int, items: list, *, paged: bool) -> None:
        """Note id, checksum and place of each person: the hot loop of a big sync, so
        it reads the platform's keys directly and checks the odd cases only on failure."""
        id_key, keys = ID_KEYS[self.platform], CHECKSUM_KEYS[self.platform]
        checksums, crc32 = self._checksums, zlib.crc32
        wrapped = self.platform == "discord"
        shape = ID_SHAPES[self.platform][0] if self.platform in ID_SHAPES else None
        for index, item in enumerate(items):
            try:
                person = (item.get("user") or item) if wrapped else item
                written = person[id_key]
                external_id = plain_id(written)
                if shape is not None and not shape.fullmatch(
                        written if type(written) is str else external_id):
                    raise KeyError(id_key)
                if person.get("bot") or external_id in checksums or not external_id:
                    if not external_id:
                        raise KeyError(id_key)
                    continue
            except (KeyError, AttributeError, TypeError):
                external_id_of(self.platform, item)  # raises the clear SnapshotError
                raise
            checksums[external_id] = crc32("\x1f".join(
                [str(item.get(key) or "") for key in keys]).encode("utf-8", "surrogatepass"))
            self._starts.append(start)
            self._indexes.append(index if paged else -1)


def skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in WHITESPACE:
        position += 1
    return position


def is_page(platform: str, value: Any) -> bool:
    key = PAGE_KEYS[platform]
    if not isinstance(value, dict):
        return False
    if key and isinstance(value.get(key), list):
        return True
    return any(isinstance(value.get(other), list)
               for other in platforms.get(platform).keys.other_page_keys)


def items_of_page(platform: str, page: dict) -> list:
    key = PAGE_KEYS[platform]
    if key and key in page:
        return page[key] or []
    for other in platforms.get(platform).keys.other_page_keys:
        if other in page:
            return page[other] or []
    return []


def load_snapshot_file(platform: str, path: Path) -> SnapshotFile:
    """Read and check a snapshot file; every problem is a SnapshotError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot read it ({exc})") from None
    try:
        return SnapshotFile(platform, text)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
