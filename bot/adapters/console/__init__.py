"""The console chat surface: the owner reads stdout and writes stdin.

With ``--json`` every message is one JSON object per line on stdout (the contract
for scripts and acceptance checks); logs and prompts go to stderr.

On a terminal (plain text, not ``--json``) the owner types at a prompt_toolkit prompt
inside ``patch_stdout``: a message that arrives while they type (a reminder, a new
connection) prints above the prompt, and the half-typed line is redrawn below it.
Piped input and ``--json`` are read and written exactly as before.
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
        self._out = out
        self.show_owner = show_owner

    @property
    def out(self) -> TextIO:
        """The stream given, else ``sys.stdout`` *as it is now*: under ``patch_stdout``
        that is the proxy that prints above the prompt."""
        return self._out or sys.stdout

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


def calm_prompt_possible(*, json_mode: bool) -> bool:
    """A redrawn prompt only for a person at a terminal; scripts and ``--json`` keep
    the plain line-by-line reading (their output must not change)."""
    return not json_mode and sys.stdin.isatty() and sys.stdout.isatty()


async def owner_lines(*, json_mode: bool, prompt: str = "you> ") -> AsyncIterator[str]:
    """What the owner types: at a calm prompt on a terminal, else line by line (with
    the plain prompt on stderr when stdin is a terminal)."""
    if calm_prompt_possible(json_mode=json_mode):
        async for line in prompt_lines(prompt):
            yield line
        return
    async for line in read_lines(prompt=prompt if sys.stdin.isatty() else None):
        yield line


async def prompt_lines(prompt: str) -> AsyncIterator[str]:
    """Lines typed at a prompt_toolkit prompt; anything printed meanwhile goes above it.

    Ctrl-D (or Ctrl-C) ends the session, as EOF does for piped input.
    """
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession()
    with patch_stdout(raw=True):
        while True:
            try:
                line = await session.prompt_async(prompt)
            except (EOFError, KeyboardInterrupt):
                return
            yield line


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
