"""Text from strangers, made harmless before anything stores, drafts or shows it.

Names, bios, profile fields, handles and ids arrive from platforms, snapshot files,
archives and CSV exports that anyone can shape. Everything here is total (it never
raises on any JSON value) and linear in the size of its input, so one odd profile can
neither crash an arrival nor stall the event loop, and no character in it can move the
owner's terminal, reverse the text of a welcome, or break a PostgreSQL insert (NUL).

The caps are generous multiples of what the platforms themselves allow (see the README,
"Hostile data"): a real profile is never cut, a crafted one is bounded. SDK-free, so
handlers, adapters and exports share it.
"""

from __future__ import annotations

import math
import re
from itertools import islice
from typing import Any

from bot.events import Profile, built_profile

# The platforms' own maxima (X: name 50, bio 160, location 30; Mastodon: display name
# 30, note 500 by default but instances raise it to a few thousand, 4 fields of 255;
# Bluesky: display name 64 graphemes / 640 bytes, description 256 graphemes / 2,560
# bytes; Discord: names 32) fit well inside these.
CAPS = {
    "name": 200,
    "handle": 320,  # user@domain: a 64-character user part and a 253-character domain
    "bio": 5_000,
    "location": 200,
    "url": 2_048,
    "field_name": 255,
    "field_value": 2_048,
    "id": 200,  # the column (``Handle.external_id``); X 20 digits, a DID under 100
}
BIO_CAP = CAPS["bio"]
MAX_FIELDS = 16  # Mastodon shows 4 by default; instances may allow a few more
MAX_RAW_DEPTH = 8  # platform JSON kept with a handle is never deeper than this
MAX_RAW_ITEMS = 64  # list items / object keys kept per level of that JSON

# Escape sequences whole (CSI such as ESC[31m, OSC such as the OSC 8 hyperlink
# ESC]8;;url ESC\ or BEL-terminated), then any control character left on its own.
ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)?"  # OSC (bounded: linear on any input)
    r"|\x1b[ -/]*[0-~]?"  # two-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
)
# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates, lone surrogates.
_UNSAFE = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
UNSAFE_MULTILINE = re.compile(f"[{_UNSAFE}]")  # keeps newline and tab
UNSAFE_ONE_LINE = re.compile(f"[{_UNSAFE}\\n\\t]")


def clean_text(value: Any, cap: int, *, multiline: bool = False) -> str:
    """``value`` as safe text of at most ``cap`` characters; anything not text is "".

    The input is cut to a few times ``cap`` before it is read, so a megabyte costs no
    more than a full-length bio. Line breaks become spaces unless ``multiline``.
    """
    if not isinstance(value, str):
        return ""
    if len(value) <= cap and value.isprintable():
        # no control, format (bidi), surrogate or line-break character: nothing to
        # remove or cut (most names and bios; a first sync cleans 14 strings a person)
        return value if multiline else value.strip()
    text = value[: cap * 4]
    if "\x1b" in text or "\x9b" in text:
        text = ESCAPE_SEQUENCE.sub("", text)
    text = text.replace("\r\n", "\n")
    if multiline:
        text = UNSAFE_MULTILINE.sub("", text)
    else:
        text = UNSAFE_ONE_LINE.sub(lambda m: " " if m.group(0) in "\n\t\r" else "", text)
    return text[:cap].strip() if not multiline else text[:cap]


def clean_id(value: Any) -> str | None:
    """A platform id as text, or ``None`` when it is no id: only non-empty strings and
    whole numbers are ids (never true/false, fractions, NaN, lists or objects)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if -10 ** CAPS["id"] < value < 10 ** CAPS["id"] else None
    if isinstance(value, str):
        text = clean_text(value, CAPS["id"])
        return text if text and len(value) <= CAPS["id"] and text == value.strip() else None
    return None


def clean_raw(value: Any, depth: int = 0) -> Any:
    """Platform JSON kept with a handle, bounded in depth and size, strings cleaned.

    It is stored as text and read back for details (X's link entities), so a NUL byte
    or a lone surrogate in it would fail the insert on PostgreSQL.
    """
    if depth > MAX_RAW_DEPTH:
        return None
    kind = type(value)
    if kind is str:
        return clean_text(value, CAPS["bio"], multiline=True)
    if kind is dict and depth < MAX_RAW_DEPTH:
        # text values cleaned inline (most are), and printable ones that fit kept as they
        # are without a call: clean_text's own first test, so the same result
        return {(_KEYS.get(k) if type(k) is str else None) or clean_key(k):
                (v if len(v) <= BIO_CAP and v.isprintable()
                 else clean_text(v, BIO_CAP, multiline=True)) if type(v) is str
                else clean_raw(v, depth + 1) for k, v in islice(value.items(), MAX_RAW_ITEMS)}
    if isinstance(value, str):
        return clean_text(value, CAPS["bio"], multiline=True)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {clean_text(str(k), CAPS["field_name"]): clean_raw(v, depth + 1)
                for k, v in islice(value.items(), MAX_RAW_ITEMS)}
    if isinstance(value, list | tuple):
        return [clean_raw(v, depth + 1) for v in value[:MAX_RAW_ITEMS]]
    return clean_text(str(value), CAPS["bio"])


_KEYS: dict[str, str] = {}  # the platforms' few dozen keys, cleaned once each
MAX_KNOWN_KEYS = 4_096


def clean_key(key: Any) -> str:
    """A JSON object's key as ``clean_raw`` keeps it; the usual short ones are
    remembered (every follower's object repeats them), a bounded number of them."""
    if type(key) is not str:
        return clean_text(str(key), CAPS["field_name"])
    cleaned = _KEYS.get(key)
    if cleaned is None:
        cleaned = clean_text(key, CAPS["field_name"])
        if len(key) <= 64 and len(_KEYS) < MAX_KNOWN_KEYS:
            _KEYS[key] = cleaned
    return cleaned


def clean_profile(profile: Profile) -> Profile:
    """Every text of ``profile`` cleaned and capped (the id is checked by the caller)."""
    return cleaned_profile(
        platform=profile.platform, external_id=profile.external_id, handle=profile.handle,
        name=profile.name, bio=profile.bio, location=profile.location, url=profile.url,
        fields=profile.fields, accepts_dms=profile.accepts_dms, is_bot=profile.is_bot,
        raw=profile.raw)


def cleaned_profile(*, platform: str, external_id: str, handle: str, name: str = "",
                    bio: str = "", location: str = "", url: str = "",
                    fields: tuple[tuple[str, str], ...] = (), accepts_dms: bool | None = None,
                    is_bot: bool = False, raw: Any = None) -> Profile:
    """``clean_profile(Profile(...))`` building one frozen ``Profile``, not two (the
    translators make one per follower: a first sync of a million makes a million)."""
    return built_profile(
        platform,
        external_id,
        clean_text(handle, CAPS["handle"]) or external_id,
        clean_text(name, CAPS["name"]),
        clean_text(bio, BIO_CAP, multiline=True),
        clean_text(location, CAPS["location"]) if location else "",
        clean_text(url, CAPS["url"]) if url else "",
        tuple((clean_text(k, CAPS["field_name"]), clean_text(v, CAPS["field_value"]))
              for k, v in fields[:MAX_FIELDS]) if fields or type(fields) is not tuple else (),
        accepts_dms,
        is_bot,
        clean_raw(raw) if isinstance(raw, dict) else {},
    )

