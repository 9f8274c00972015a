"""``help``: generated from the command definitions themselves (``command_catalog``)."""

from __future__ import annotations

import difflib
import textwrap
from itertools import groupby

from bot.context import Context
from handlers.commands import (
    GROUP_TITLES,
    NAMED,
    CommandError,
    CommandInfo,
    command,
    command_catalog,
    command_specs,
)


@command("help", "help [command]", group="general", aliases=("?",), profiles=NAMED)
async def help_command(args: str, ctx: Context) -> None:
    """Show what I understand, or how to use one command.

    `help` lists every command by topic; `help log` explains `log` with an example.
    """
    words = args.split()
    if len(words) > 1:
        raise CommandError("Ask about one command at a time, like `help log`.")
    if words:
        info = _info(words[0].lower())
        ctx.send("reply", command_help(info), command=info.name, usage=info.usage)
        return
    catalog = command_catalog()
    ctx.send("reply", overview(catalog), commands=[info.name for info in catalog])


def _info(name: str) -> CommandInfo:
    spec = command_specs().get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(command_specs()), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CommandError(f"There is no command {name[:40]!r}.{hint} "
                           "Write `help` to see them all.")
    return next(info for info in command_catalog() if info.name == spec.name)


def command_help(info: CommandInfo) -> str:
    lines = [f"Usage: {info.usage}"]
    if info.help:
        lines.append(info.help)
    if info.aliases:
        lines.append(f"Also written: {', '.join(info.aliases)}")
    return "\n".join(lines)


MESSAGE_BUDGET = 1_900  # one Discord message (2,000 characters) with room to spare
SUMMARY_LENGTHS = (100, 72, 56, 40, 32, 28, 0)


def overview(catalog: list[CommandInfo], budget: int = MESSAGE_BUDGET) -> str:
    """Every command by topic, usage first; summaries are shortened (or left out) so the
    whole list stays one chat message however many commands there are."""
    for length in SUMMARY_LENGTHS:
        text = _overview(catalog, length)
        if len(text) <= budget:
            return text
    return _names_only(catalog)


def _names_only(catalog: list[CommandInfo]) -> str:
    """The last resort for a very long list: each topic's command names on one line."""
    lines = ["Commands (write `help <command>` for how to use one):"]
    for group, infos in groupby(catalog, key=lambda info: info.group):
        names = ", ".join(dict.fromkeys(info.name for info in infos))
        lines.append(f"{GROUP_TITLES.get(group, group.title())}: {names}")
    return "\n".join(lines)


def _overview(catalog: list[CommandInfo], summary_length: int) -> str:
    lines = ["Commands (write `help <command>` for details and examples):"]
    for group, infos in groupby(catalog, key=lambda info: info.group):
        lines.append(f"{GROUP_TITLES.get(group, group.title())}:")
        for info in infos:
            usage = info.usage if len(info.usage) <= 40 else info.name + " …"
            summary = _clip(info.summary, summary_length)
            lines.append(f"  {usage} — {summary}" if summary else f"  {usage}")
    return "\n".join(lines)


def _clip(text: str, length: int) -> str:
    """At most ``length`` characters, cut at a word boundary (never mid-word)."""
    if len(text) <= length:
        return text
    lines = textwrap.wrap(text, width=max(length - 1, 1), break_long_words=False)
    if not length or not lines or len(lines[0]) > length - 1:
        return ""
    return lines[0].rstrip(" ,;:.—") + "…"
