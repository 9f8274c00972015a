"""Strangers' names, bios and handles shown in the owner's Discord DMs as plain text.

A display name like ``[Your account is locked](https://evil.example)`` or
``**URGENT**`` would otherwise render as a masked link or bold text in a message that
comes from the owner's own bot. The handlers write plain text and know nothing of
Discord; the messages carry the profile values they quote in their ``fields``, so the
Discord surface escapes exactly those values wherever they appear in the text, and the
bot's own formatting (``**New connection:**``, `` `send 3` ``) stays as it is. Replies
that name people only in their text (``drafts``, ``due``, ``history``, the digest…)
carry the values they quote beside their fields (``bot.context.quoted_in``), escaped
the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from discord.utils import escape_markdown, escape_mentions

from bot.context import MARKUP, untrusted_values

SPECIAL = MARKUP  # what Markdown or a mention could use
UNESCAPED_BRACKET = re.compile(r"(?<!\\)\[")


def escape_untrusted(text: str, fields: dict[str, Any], quoted: Iterable[str] = ()) -> str:
    """``text`` with every profile value quoted from ``fields``, and every one the
    handler found it quotes (``OutgoingMessage.quoted``), escaped for Discord."""
    values = sorted({v for v in (*untrusted_values(fields), *quoted) if SPECIAL.search(v)},
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
