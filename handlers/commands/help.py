"""``help``: generated from the command definitions themselves (``command_catalog``)."""

from __future__ import annotations

import difflib
from itertools import groupby

from bot.context import Context
from handlers.commands import (
    GROUP_TITLES,
    CommandError,
    CommandInfo,
    command,
    command_catalog,
    command_specs,
)


@command("help", "help [command]", group="general", aliases=("?",))
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


def overview(catalog: list[CommandInfo]) -> str:
    width = min(44, max(len(info.usage) for info in catalog))
    lines = ["Commands (write `help <command>` for details and examples):"]
    for group, infos in groupby(catalog, key=lambda info: info.group):
        lines.append(f"{GROUP_TITLES.get(group, group.title())}:")
        for info in infos:
            usage = info.usage if len(info.usage) <= width else info.name + " …"
            lines.append(f"  {usage:<{width}}  {info.summary}")
    return "\n".join(lines)
