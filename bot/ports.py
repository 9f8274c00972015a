"""The ports between the core and the platform adapters, checked by the type checker.

An adapter offers up to three things: a ``Source`` (one poll turns platform changes into
events), a ``WelcomeSender`` (delivers an approved welcome to a person) and a
``ChatSurface`` (where the owner reads the bot). They are Protocols, so an adapter
class needs no base class, but every place that passes one is annotated with these
types: a sender whose signature drifts from the port (a missing ``via``) is a mypy error,
not a ``TypeError`` at the moment the owner approves a welcome.

Handlers import this module; it imports no adapter and no platform SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bot.app import App
    from bot.context import OutgoingMessage
    from storage.models import Handle


class SendRefused(Exception):
    """The platform refused a welcome before anything went out; the message says why in
    one sentence (the text to send by hand is added by the caller, once)."""


class SendUncertain(Exception):
    """The request may have reached the platform (a timeout, a connection dropped after
    sending): the welcome may or may not have gone out, so it is never re-sent by itself."""


@runtime_checkable
class WelcomeSender(Protocol):
    """An adapter's port for delivering an approved welcome to a person.

    Returns a human-readable confirmation. Raises ``SendRefused`` when the platform would
    not take it (DMs closed, 403, rate limited, unreachable before sending) and
    ``SendUncertain`` when the request may have reached it; any other exception is a bug
    of ours before the request, reported as an error with the draft still pending.
    ``via`` is the owner's choice where a platform offers one (``send <draft> dm``:
    Discord's "channel" post or "dm"); None means the platform's default, and senders
    without a choice ignore it. A sender that keeps state with the owner's account (Bluesky
    keeps its login session there) also offers ``attach(app)``, which ``App`` calls.
    """

    platform: str

    async def send_welcome(self, *, handle: Handle, text: str, via: str | None = None) -> str:
        ...


class ChatSurface(Protocol):
    """Where an owner reads the bot: the console, Discord DMs, a test double.

    ``message.owner_ref`` says whose message it is (a multi-owner worker routes by it);
    ``message.idempotency_key`` is the same on every delivery attempt of one message.
    """

    async def send(self, message: OutgoingMessage) -> None: ...


class Source(Protocol):
    """A platform connection source: one poll turns platform changes into events.

    ``App.poll_sources`` calls ``poll`` only while this process holds the lease on the
    owner's account for ``platform`` (``storage/leases.py``), renewed in the background
    while the poll runs: two workers never poll one account at once, and a dead worker's
    accounts are polled by another once its lease expires. A source needs to do nothing
    for this. A source serving many owners' accounts claims them itself with
    ``leases.claim_due_accounts(...)`` and gives them back with ``leases.release(...)``.
    A source that can also deliver welcomes (Mastodon, Bluesky) offers a ``sender``
    attribute (see ``senders_of``).
    """

    platform: str

    async def poll(self, app: App) -> None: ...


def senders_of(sources: list[Source]) -> dict[str, WelcomeSender]:
    """The welcome senders the sources offer, by platform."""
    found: dict[str, WelcomeSender] = {}
    for source in sources:
        sender = getattr(source, "sender", None)
        if isinstance(sender, WelcomeSender):
            found[source.platform] = sender
    return found
