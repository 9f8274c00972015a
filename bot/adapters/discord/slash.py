"""Slash commands, generated from the chat command registry."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import discord
from discord import app_commands

from handlers.commands import CommandSpec, unique_specs

log = logging.getLogger(__name__)


# --- slash commands, generated from the command registry ----------------------------

SLASH_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
DM_ONLY = app_commands.AppCommandContext(guild=False, dm_channel=True, private_channel=False)
SlashRunner = Callable[[discord.Interaction, str], Awaitable[None]]


def clip(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def slash_commands(run: SlashRunner) -> list[app_commands.Command]:
    """One slash command per chat command: its summary as description, usage as hint."""
    commands = []
    for spec in unique_specs():
        if SLASH_NAME.match(spec.name):
            commands.append(slash_command(spec, run))
        else:
            log.warning("chat command %r cannot be a Discord slash command name", spec.name)
    return commands


def slash_command(spec: CommandSpec, run: SlashRunner) -> app_commands.Command:
    return app_commands.Command(
        name=spec.name,
        description=clip(spec.summary or spec.usage),
        callback=_slash_callback(spec, run),
        allowed_contexts=DM_ONLY,
    )


def _slash_callback(spec: CommandSpec, run: SlashRunner):
    """A callback whose one optional/required ``arguments`` string mirrors the usage."""
    usage = spec.usage.strip()
    if usage == spec.name:

        async def bare(interaction: discord.Interaction) -> None:
            await run(interaction, spec.name)

        return bare
    if "<" in usage:

        async def required(interaction: discord.Interaction, arguments: str) -> None:
            await run(interaction, f"{spec.name} {arguments}")

        return app_commands.describe(arguments=clip(usage))(required)

    async def optional(interaction: discord.Interaction, arguments: str = "") -> None:
        await run(interaction, f"{spec.name} {arguments}".strip())

    return app_commands.describe(arguments=clip(usage))(optional)


def command_fingerprint(payloads: Iterable[Any]) -> set[tuple]:
    """What matters of registered commands, to sync only when something changed."""
    return {
        (
            p["name"], p.get("description") or "",
            tuple((o["name"], o.get("description") or "", bool(o.get("required")))
                  for o in p.get("options") or []),
            tuple(sorted(p.get("contexts") or [])),
        )
        for p in payloads
    }
