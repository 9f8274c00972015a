"""The owner's chat commands: one registry, one parser, one error path.

A command is ``async def name(args: str, ctx) -> None`` decorated with ``@command``,
which only records a ``CommandSpec`` on the function. Its docstring *is* its help
text, so ``help``, the console and Discord slash commands share one source of truth.
Modules are listed in ``COMMAND_MODULES``.

Profiles a first sync left unread (``handlers.backlog``) are read before a command
marked ``profiles=EVERYONE`` (the default) runs: it answers from everyone's roles,
fields or the search index. A command marked ``NAMED`` runs at once: the people it
names are found among the unread too and read on the spot (``handlers.people``).

A command that cannot be done raises ``CommandError``: everything it changed is
rolled back (a savepoint) and the owner gets one ``error`` message with the usage.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from bot.context import Context
from bot.dispatcher import on
from bot.events import CommandReceived

log = logging.getLogger(__name__)

CommandFunc = Callable[[str, Context], Awaitable[None]]
# A line that is no command may still answer something the bot asked for (a pasted
# authorization code): each hook returns True when the line was its answer.
LineHook = Callable[[str, Context], Awaitable[bool]]
UNMATCHED_LINE_HOOKS: list[LineHook] = []


def on_unmatched_line(hook: LineHook) -> LineHook:
    """Offer ``hook`` every line that names no command (see ``UNMATCHED_LINE_HOOKS``)."""
    UNMATCHED_LINE_HOOKS.append(hook)
    return hook


async def answered_by_hook(line: str, ctx: Context) -> bool:
    for hook in UNMATCHED_LINE_HOOKS:
        if await hook(line, ctx):
            return True
    return False

COMMAND_MODULES: tuple[str, ...] = (
    "handlers.commands.help",
    "handlers.commands.contacts",
    "handlers.commands.drafts",
    "handlers.commands.reminders",
    "handlers.commands.network",
    "handlers.commands.settings",
    "handlers.commands.export",
    "handlers.commands.book",
    "handlers.commands.greeting",
    "handlers.commands.accounts",
)
MAX_LINE = 4_000
# what a command needs read of the profiles a first sync left unread (handlers.backlog)
EVERYONE = "everyone"  # all of them, before it runs (find, export, digest, people field)
NAMED = "named"  # only the people it names, read when it resolves them (log, who, …)


class CommandError(Exception):
    """The command cannot be done; ``str(self)`` says why, ``usage`` how to write it."""

    def __init__(self, message: str, *, usage: str | None = None,
                 choices: list[tuple[str, int]] | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        # a numbered list shown to the owner: (text in the line, the #id it stands for)
        self.choices = choices or []


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    func: CommandFunc
    group: str = "general"
    aliases: tuple[str, ...] = ()
    profiles: str = EVERYONE

    @property
    def help(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        return self.help.splitlines()[0] if self.help else ""


def command(name: str, usage: str, *, group: str = "general", aliases: tuple[str, ...] = (),
            profiles: str = EVERYONE):
    """Mark ``func`` as the chat command ``name``; ``usage`` is shown on every error.
    ``profiles``: ``NAMED`` when it looks at no one's profile but the people it names
    (it then never waits for a first sync's backlog), else ``EVERYONE``."""
    if profiles not in (EVERYONE, NAMED):
        raise ValueError(f"profiles must be EVERYONE or NAMED, not {profiles!r}")

    def mark(func: CommandFunc) -> CommandFunc:
        vars(func)["__plnbot_command__"] = CommandSpec(  # metadata on the function object
            name=name, usage=usage, func=func, group=group, aliases=aliases, profiles=profiles
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


GROUP_TITLES = {
    "people": "People",
    "drafts": "Welcome drafts",
    "reminders": "Reminders and habits",
    "network": "Your network",
    "settings": "Settings",
    "data": "Your data",
    "general": "General",
}
PLACEHOLDERS = {"person", "me", "text", "when", "id", "draft", "command", "days", "tag", "n"}
USAGE_TOKEN = re.compile(r"\[[^\[\]]*\]|<[^<>]*>|\S+")


@dataclass(frozen=True)
class Argument:
    """One argument of a command, read from its usage line.

    ``keyword`` is set for ``[tz <Area/City>]``-style options (the word to write
    before the value); ``rest`` means it takes the rest of the line; ``choices``
    lists the allowed literal values, if any.
    """

    name: str
    placeholder: str
    required: bool
    rest: bool = False
    keyword: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandInfo:
    """A command in structured form: what ``help`` shows and Discord registers."""

    name: str
    usage: str
    summary: str
    help: str
    group: str
    aliases: tuple[str, ...]
    arguments: tuple[Argument, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_usage(usage: str) -> tuple[Argument, ...]:
    """``"remind <person|me> <when> [text…]"`` → its arguments, in order."""
    arguments: list[Argument] = []
    for token in USAGE_TOKEN.findall(usage)[1:]:
        if token.startswith("<"):
            arguments.append(_placeholder(token, required=True))
        elif token.startswith("["):
            inner = token[1:-1].strip()
            keyword, _, value = inner.partition(" ")
            if value.startswith("<") and not keyword.startswith("<"):
                arguments.append(_placeholder(value, required=False, keyword=keyword))
            else:
                arguments.append(_placeholder(inner, required=False))
    return _unique_names(arguments)


def _placeholder(token: str, *, required: bool, keyword: str | None = None) -> Argument:
    inner = token.strip("<>").strip()
    rest = "…" in inner or "..." in inner
    inner = inner.replace("…", "").replace("...", "").strip()
    options = [option.strip() for option in inner.split("|")]
    is_choice = len(options) > 1 and all(
        re.fullmatch(r"[a-z]+", o) and o not in PLACEHOLDERS for o in options
    )
    base = keyword or ("kind" if is_choice else options[0])
    name = re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_") or "value"
    return Argument(name=name, placeholder=token, required=required, rest=rest,
                    keyword=keyword, choices=tuple(options) if is_choice else ())


def _unique_names(arguments: list[Argument]) -> tuple[Argument, ...]:
    seen: dict[str, int] = {}
    unique = []
    for argument in arguments:
        seen[argument.name] = seen.get(argument.name, 0) + 1
        if seen[argument.name] > 1:
            argument = Argument(**{**asdict(argument),
                                   "name": f"{argument.name}_{seen[argument.name]}"})
        unique.append(argument)
    return tuple(unique)


def command_catalog() -> list[CommandInfo]:
    """Every command, grouped and in a stable order: the one source of truth for
    ``help`` and for generated interfaces such as Discord slash commands."""
    order = list(GROUP_TITLES)
    specs = sorted(unique_specs(), key=lambda s: (
        order.index(s.group) if s.group in order else len(order), s.group))
    return [
        CommandInfo(name=spec.name, usage=spec.usage, summary=spec.summary, help=spec.help,
                    group=spec.group, aliases=spec.aliases, arguments=parse_usage(spec.usage))
        for spec in specs
    ]


def has_control_characters(text: str) -> bool:
    """Tabs and line breaks are text (a multi-line Discord message, an edited draft)."""
    return any(ord(ch) < 32 and ch not in "\t\n" or ord(ch) == 127 for ch in text)


def unknown_command(name: str) -> str:
    """Not a bare "unknown": the nearest commands, and where to start."""
    import difflib

    close = difflib.get_close_matches(name.lower(), list(command_specs()), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
    return (f"I don't know the command {name[:40]!r}.{hint} Write `help` to see what I "
            "understand, or `hello` for the settings to start with.")


@on(CommandReceived)
async def on_command(event: CommandReceived, ctx: Context) -> None:
    """Parse one line, run its command, and turn a CommandError into one ``error``."""
    from handlers import backlog, prompts

    line = event.text.strip()
    if not line:
        return
    line = prompts.answer(ctx, line)
    name, _, rest = line.partition(" ")
    spec = command_specs().get(name.lower())
    backlog.forget_candidates(ctx.session)
    if spec is not None and spec.profiles == EVERYONE:
        # it answers from everyone's profiles: a first sync's unread ones are read first
        backlog.catch_up(ctx.session, owner_id=ctx.owner.id)
    mark, jobs = len(ctx.sent), len(ctx.after_commit)
    savepoint = ctx.session.begin_nested()
    try:
        if spec is None and await answered_by_hook(line, ctx):
            savepoint.commit()
            return
        if spec is None:
            raise CommandError(unknown_command(name), usage="help [command]")
        if len(line) > MAX_LINE:
            raise CommandError(f"That message is too long ({len(line)} characters; "
                               f"the limit is {MAX_LINE}).")
        if has_control_characters(line):
            raise CommandError("That message contains control characters; please retype it.")
        with prompts.recorded(ctx, spec.name, line, mark):
            await spec.func(rest.strip(), ctx)
        savepoint.commit()
    except CommandError as exc:
        savepoint.rollback()
        del ctx.sent[mark:]
        del ctx.after_commit[jobs:]
        usage = exc.usage or (spec.usage if spec else "help [command]")
        ctx.send("error", f"{exc}\nUsage: {usage}", usage=usage)
        prompts.offer_choice(ctx, name.lower(), rest.strip(), exc.choices)
