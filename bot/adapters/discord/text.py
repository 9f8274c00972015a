"""Text going to Discord (split at its 2,000 characters, nonces) and discord.py's
members as platform JSON and normalised profiles."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import discord

from bot.adapters.console import LABELS
from bot.adapters.discord.markdown import escape_untrusted
from bot.adapters.translate import discord_profile
from bot.context import OutgoingMessage
from bot.events import (
    Profile,
)

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # Discord's limit for a message's content
NONCE_LENGTH = 25  # Discord's limit for a message nonce


# --- text going to Discord ------------------------------------------------------------


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into messages of at most ``limit`` characters.

    Cuts fall on a paragraph break, else a line break, else a space, so words and
    links stay whole; only a single token longer than ``limit`` has to be cut
    inside. A code block cut in two is closed and reopened so both halves render.
    """
    parts: list[str] = []
    rest = text.strip()
    while rest:
        room = limit - 4 if "```" in rest else limit
        if len(rest) <= limit and rest.count("```") % 2 == 0:
            parts.append(rest)
            break
        head, rest = _cut(rest, room)
        if head.count("```") % 2:
            head, rest = head + "\n```", "```\n" + rest
        parts.append(head)
    return parts


def _cut(text: str, room: int) -> tuple[str, str]:
    """The longest head up to ``room`` that ends at whitespace, and the rest."""
    if len(text) <= room:
        return text, ""
    window = text[: room + 1]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > room // 4 or (separator == " " and at > 0):
            return window[:at].rstrip(), text[at + len(separator):].lstrip("\n ")
    return text[:room], text[room:]


def nonce_for(key: str, part: int = 0) -> str:
    """A stable nonce (≤ 25 characters) per message part: Discord drops a repeat of it."""
    digest = hashlib.blake2b(f"{key}#{part}".encode(), digest_size=16).hexdigest()
    return digest[:NONCE_LENGTH]


def surface_text(message: OutgoingMessage) -> str:
    """The owner's DM for one outbox message: its label in bold, then the text."""
    label = LABELS.get(message.kind)
    text = escape_untrusted(message.text, message.fields, message.quoted)
    if label and message.kind != "new_connection":
        text = f"**{label}:** {text}"
    image = message.fields.get("image")
    if image and not Path(str(image)).is_file():
        text += f"\n(The chart {image} is missing, so it is not attached.)"
    return text


# --- discord.py objects → normalised events ---------------------------------------------


def member_payload(member: discord.Member | discord.User) -> dict[str, Any]:
    """The Discord API's own member shape, as ``plnbot sync --platform discord`` reads it."""
    roles = [role.name for role in getattr(member, "roles", None) or []]
    joined = getattr(member, "joined_at", None)
    return {
        "user": {
            "id": str(member.id),
            "username": member.name,
            "global_name": member.global_name,
            "bot": bool(member.bot),
        },
        "nick": getattr(member, "nick", None),
        "roles": roles,
        "joined_at": joined.isoformat() if joined else None,
    }


def member_profile(member: discord.Member | discord.User) -> Profile:
    return discord_profile(member_payload(member))
