"""``help``: generated from the command definitions themselves."""

from __future__ import annotations

from bot.context import Context
from handlers.commands import CommandError, command, command_specs, unique_specs


@command("help", "help [command]")
async def help_command(args: str, ctx: Context) -> None:
    """Show what I understand, or how to use one command.

    `help` lists every command; `help log` explains `log`.
    """
    name = args.strip().lower()
    if name:
        spec = command_specs().get(name.split()[0])
        if spec is None:
            raise CommandError(f"There is no command {name!r}.")
        ctx.send("reply", f"Usage: {spec.usage}\n{spec.help}", command=spec.name)
        return
    lines = ["Commands (write `help <command>` for details):"]
    lines += [f"  {spec.usage:<48} {spec.summary}" for spec in unique_specs()]
    ctx.send("reply", "\n".join(lines))
