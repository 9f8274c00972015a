"""The console chat surface: the owner reads stdout and writes stdin.

With ``--json`` every message is one JSON object per line on stdout (the contract
for scripts and acceptance checks); logs and prompts go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from bot.context import OutgoingMessage
from bot.platforms import Platform

# Messages written here (``plnbot demo``'s simulated people) need no account.
PLATFORM = Platform(id="console", name="here", order=9)

LABELS = {
    "new_connection": "New connection",
    "welcome_back": "Welcome back",
    "connection_lost": "Lost",
    "connections_vanished": "Vanished",
    "connections_returned": "Returned",
    "reminder": "Reminder",
    "nudge": "Nudge",
    "digest": "Weekly digest",
    "error": "Error",
    "follow_request": "Follow request",
}


class ConsoleSurface:
    """``show_owner``: a multi-owner worker prints whose message it is (JSON: ``owner``,
    and ``key``, the idempotency key a consumer drops repeats by)."""

    def __init__(self, *, json_mode: bool = False, out: TextIO | None = None,
                 show_owner: bool = False) -> None:
        self.json_mode = json_mode
        self.out = out or sys.stdout
        self.show_owner = show_owner

    async def send(self, message: OutgoingMessage) -> None:
        if self.json_mode:
            data = message.as_json()
            if self.show_owner:
                data |= {"owner": message.owner_ref, "key": message.idempotency_key}
            line = json.dumps(data, ensure_ascii=False, default=str)
        else:
            line = format_plain(message)
            if self.show_owner:
                line = f"[{message.owner_ref}] {line}"
        self.out.write(line + "\n")
        self.out.flush()


def format_plain(message: OutgoingMessage) -> str:
    label = LABELS.get(message.kind)
    if message.kind == "new_connection":
        return f"\n{message.text}\n"
    text = f"[{label}] {message.text}" if label else message.text
    image = message.fields.get("image")
    if image:
        text += f"\n(chart saved to {image})"
    return text


async def read_lines(
    stream: TextIO | None = None, *, prompt: str | None = None
) -> AsyncIterator[str]:
    """Lines from stdin without blocking the event loop; ends at EOF."""
    stream = stream or sys.stdin
    loop = asyncio.get_running_loop()
    while True:
        if prompt:
            sys.stderr.write(prompt)
            sys.stderr.flush()
        line = await loop.run_in_executor(None, stream.readline)
        if not line:
            return
        yield line.rstrip("\r\n")
