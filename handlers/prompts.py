"""Questions the bot waits on, and the undo log around each command.

A numbered choice ("say which one: 1. … 2. …") is answered by its number alone; a
``link`` waits for ``yes``. The question is a row (``PendingPrompt``), so a restart
between question and answer changes nothing, and whatever else the owner writes next
drops it. Commands that change the contact book are recorded for ``undo``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import select

from bot.context import Context, quoted_in
from storage import undo
from storage.models import PendingPrompt

# Commands whose changes `undo` can reverse (``yes`` carries out a confirmed ``link``).
UNDOABLE = frozenset({
    "log", "note", "yes", "unlink", "skip", "tag", "untag", "done", "cancel", "snooze",
    "settings", "remind", "cadence", "goal", "add", "rename", "edit", "delete", "edit-log",
})
CONFIRM_WORDS = ("yes", "y")
COMMAND_KEY = "plnbot_undo_command"


def pending(ctx: Context) -> PendingPrompt | None:
    return ctx.session.exec(
        select(PendingPrompt).where(PendingPrompt.owner_id == ctx.owner.id)).first()


def ask(ctx: Context, kind: str, payload: dict[str, Any]) -> None:
    """Wait for the owner's answer to one question (replacing any earlier one)."""
    drop(ctx)
    ctx.session.add(PendingPrompt(owner_id=ctx.owner.id, kind=kind,
                                  payload_json=json.dumps(payload), created_at=ctx.now()))
    ctx.session.flush()


def drop(ctx: Context) -> None:
    prompt = pending(ctx)
    if prompt is not None:
        ctx.session.delete(prompt)
        ctx.session.flush()


def answer(ctx: Context, line: str) -> str:
    """The line to run: a number answering a pending choice becomes the command it
    chose; ``yes`` keeps a pending confirmation for the ``yes`` command; anything else
    drops whatever question was pending."""
    prompt = pending(ctx)
    if prompt is None:
        return line
    word = line.strip().lower()
    if prompt.kind == "confirm" and word in CONFIRM_WORDS:
        return line
    drop(ctx)
    if prompt.kind == "choice" and word.isdigit():
        payload = json.loads(prompt.payload_json)
        choices = payload["choices"]
        if 1 <= int(word) <= len(choices):
            fragment, contact_id = choices[int(word) - 1]
            return f"{payload['name']} " + payload["args"].replace(
                fragment, f"#{contact_id}", 1)
    return line


def offer_choice(ctx: Context, name: str, args: str, choices: list[tuple[str, int]]) -> None:
    """Remember a numbered list the owner was just shown, to answer by number."""
    if choices and all(fragment in args for fragment, _ in choices):
        ask(ctx, "choice", {"name": name, "args": args, "choices": choices})


@contextmanager
def recorded(ctx: Context, name: str, line: str, mark: int) -> Iterator[None]:
    """Run an undoable command and keep what it changed, with what it told the owner."""
    if name not in UNDOABLE:
        yield
        return
    with undo.recording(ctx.session, owner_id=ctx.owner.id) as recorder:
        yield
        ctx.session.flush()
    said = " ".join(m.text for m in ctx.sent[mark:] if m.kind == "reply")
    line = ctx.session.info.pop(COMMAND_KEY, line)
    undo.save(ctx.session, recorder=recorder, command=line, summary=said, now=ctx.now(),
              quoted=quoted_in(ctx.session, said))


def describe_as(ctx: Context, command: str) -> None:
    """Name the running command differently in the undo log (``yes`` → the link)."""
    ctx.session.info[COMMAND_KEY] = command
