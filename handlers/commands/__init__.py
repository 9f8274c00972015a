"""The owner's chat commands: one registry, one parser, one error path.

A command is ``async def name(args: str, ctx) -> None`` decorated with ``@command``,
which only records a ``CommandSpec`` on the function. Its docstring *is* its help
text, so ``help``, the console and Discord slash commands share one source of truth.
Modules are listed in ``COMMAND_MODULES``.

A command that cannot be done raises ``CommandError``: everything it changed is
rolled back (a savepoint) and the owner gets one ``error`` message with the usage.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache

from bot.context import Context
from bot.dispatcher import on
from bot.events import CommandReceived

log = logging.getLogger(__name__)

CommandFunc = Callable[[str, Context], Awaitable[None]]

COMMAND_MODULES: tuple[str, ...] = (
    "handlers.commands.help",
    "handlers.commands.contacts",
    "handlers.commands.drafts",
    "handlers.commands.reminders",
    "handlers.commands.network",
    "handlers.commands.settings",
    "handlers.commands.export",
)
MAX_LINE = 4_000


class CommandError(Exception):
    """The command cannot be done; ``str(self)`` says why, ``usage`` how to write it."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    func: CommandFunc
    group: str = "general"
    aliases: tuple[str, ...] = ()

    @property
    def help(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        return self.help.splitlines()[0] if self.help else ""


def command(name: str, usage: str, *, group: str = "general", aliases: tuple[str, ...] = ()):
    """Mark ``func`` as the chat command ``name``; ``usage`` is shown on every error."""

    def mark(func: CommandFunc) -> CommandFunc:
        func.__plnbot_command__ = CommandSpec(
            name=name, usage=usage, func=func, group=group, aliases=aliases
        )
        return func

    return mark


@cache
def command_specs() -> dict[str, CommandSpec]:
    """Every command by name and alias, read from ``COMMAND_MODULES``."""
    specs: dict[str, CommandSpec] = {}
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            spec = getattr(value, "__plnbot_command__", None)
            if spec is not None:
                for name in (spec.name, *spec.aliases):
                    specs[name] = spec
    return specs


def unique_specs() -> list[CommandSpec]:
    seen: dict[str, CommandSpec] = {}
    for spec in command_specs().values():
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def has_control_characters(text: str) -> bool:
    """Tabs and line breaks are text (a multi-line Discord message, an edited draft)."""
    return any(ord(ch) < 32 and ch not in "\t\n" or ord(ch) == 127 for ch in text)


@on(CommandReceived)
async def on_command(event: CommandReceived, ctx: Context) -> None:
    """Parse one line, run its command, and turn a CommandError into one ``error``."""
    line = event.text.strip()
    if not line:
        return
    name, _, rest = line.partition(" ")
    spec = command_specs().get(name.lower())
    mark, jobs = len(ctx.sent), len(ctx.after_commit)
    savepoint = ctx.session.begin_nested()
    try:
        if spec is None:
            raise CommandError(
                f"I don't know the command {name[:40]!r}. Write `help` to see what I understand.",
                usage="help [command]",
            )
        if len(line) > MAX_LINE:
            raise CommandError(f"That message is too long ({len(line)} characters; "
                               f"the limit is {MAX_LINE}).")
        if has_control_characters(line):
            raise CommandError("That message contains control characters; please retype it.")
        await spec.func(rest.strip(), ctx)
        savepoint.commit()
    except CommandError as exc:
        savepoint.rollback()
        del ctx.sent[mark:]
        del ctx.after_commit[jobs:]
        usage = exc.usage or (spec.usage if spec else "help [command]")
        ctx.send("error", f"{exc}\nUsage: {usage}", usage=usage)
