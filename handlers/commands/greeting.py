"""``hello`` (and ``hi``, ``thanks`` …): what a new owner needs first.

A fresh console used to be a bare prompt, and ``hi`` an error. The greeting names
the three settings that make the bot fit its owner — time zone (reminders and the
digest), field (the diversity nudge) and interests (what drafts mention) — with each
one's current value and the line that sets it by chat.
"""

from __future__ import annotations

from bot.context import Context
from handlers.commands import NAMED, command
from storage.models import Owner

GREETINGS = ("hi", "hey", "hiya", "howdy", "yo", "start", "morning", "hallo", "helo",
             "hello!", "hi!", "hey!")
THANKS = ("thanks", "thank", "thx", "ty", "cheers", "ta", "thanks!")


def setting_lines(owner: Owner) -> list[str]:
    """One line per setting that matters: its value now and how to change it."""
    tz = owner.tz or "UTC"
    tz_note = " (the default: set yours so reminders come at your 9am)" if tz == "UTC" else ""
    interests = owner.interests.replace(",", ", ") or "none yet"
    return [
        f"  • Time zone: {tz}{tz_note}. Change it: `settings tz Europe/London`",
        f"  • Your field: {owner.field}. Change it: `settings field technology`",
        f"  • Your interests: {interests}. Set them: `settings interests maths, robotics, AI`",
    ]


def greeting_text(owner: Owner) -> str:
    return "\n".join([
        "Hello! I'm plnbot. When someone new follows you I draft a welcome for you to "
        "send, and I remind you to keep in touch with the people who matter.",
        "Three settings make my help fit you:",
        *setting_lines(owner),
        "Then try `help` for everything I understand, or `help remind` for one command.",
    ])


@command("hello", "hello", group="general", aliases=GREETINGS, profiles=NAMED)
async def hello(args: str, ctx: Context) -> None:
    """Say hello: I show the settings worth setting first and how to set each.

    Time zone, field and interests steer reminders, nudges and drafts.
    """
    ctx.send("reply", greeting_text(ctx.owner), greeting=True)


@command("thanks", "thanks", group="general", aliases=THANKS, profiles=NAMED)
async def thanks(args: str, ctx: Context) -> None:
    """You're welcome: and a pointer to what to do next."""
    ctx.send("reply", "You're welcome! `drafts` shows welcomes waiting for you, `due` who "
             "to get in touch with, `help` everything else.")
