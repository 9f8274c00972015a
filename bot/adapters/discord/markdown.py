"""Strangers' names, bios and handles shown in the owner's Discord DMs as plain text.

A display name like ``[Your account is locked](https://evil.example)`` or
``**URGENT**`` would otherwise render as a masked link or bold text in a message that
comes from the owner's own bot. The handlers write plain text and know nothing of
Discord; the messages carry the profile values they quote in their ``fields``, so the
Discord surface escapes exactly those values wherever they appear in the text, and the
bot's own formatting (``**New connection:**``, `` `send 3` ``) stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from discord.utils import escape_markdown, escape_mentions

from bot.context import MARKUP

# Keys of message fields whose values come from someone else's profile.
UNTRUSTED_KEYS = frozenset({"name", "names", "handle", "handles", "first_name", "role",
                            "organisation", "location", "website", "interests", "bio",
                            "display_handle"})
SPECIAL = MARKUP  # what Markdown or a mention could use
UNESCAPED_BRACKET = re.compile(r"(?<!\\)\[")


def escape_untrusted(text: str, fields: dict[str, Any], quoted: Iterable[str] = ()) -> str:
    """``text`` with every profile value quoted from ``fields``, and every one the
    handler found it quotes (``OutgoingMessage.quoted``), escaped for Discord."""
    values = sorted({v for v in (*_untrusted_values(fields), *quoted) if SPECIAL.search(v)},
                    key=len, reverse=True)
    if not values:
        return text
    pattern = re.compile("|".join(re.escape(v) for v in values))
    return pattern.sub(lambda match: escape(match.group(0)), text)


def escape(value: str) -> str:
    """One value as literal text: no Markdown, no masked link, no @everyone. Every "["
    is escaped too: ``escape_markdown`` only escapes a whole ``[text](url)``, and a bio
    quoted in part may hold one cut in two."""
    return UNESCAPED_BRACKET.sub(r"\\[", escape_mentions(escape_markdown(value)))


def _untrusted_values(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for inner_key, inner in value.items():
            yield from _untrusted_values(inner, str(inner_key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _untrusted_values(item, key)
    elif isinstance(value, str) and key in UNTRUSTED_KEYS and len(value) >= 2:
        yield value
        # and each word of it on its own, for text that quotes the value only in part
        # (a bio cut at 280 characters, a name inside a longer line)
        for word in value.split():
            if len(word) >= 2 and word != value:
                yield word
