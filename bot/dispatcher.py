"""Routes normalised events to handlers: one session, one transaction per event.

Handlers register with ``@on(EventType)``, which only records metadata on the
function; the dispatcher reads it from an explicit list of handler modules, so what
runs is visible in one place (``HANDLER_MODULES``).
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.config import Settings
from bot.connecting import AccountConnector, default_connector
from bot.context import Clock, Context, WelcomeSender, utcnow
from bot.events import CommandReceived, Event
from storage import repo
from storage.db import session_scope
from storage.models import OutboxMessage

log = logging.getLogger(__name__)

Handler = Callable[[Event, Context], Awaitable[None]]

HANDLER_MODULES: tuple[str, ...] = (
    "handlers.welcome",
    "handlers.arrivals",
    "handlers.connections",
    "handlers.commands",
    "handlers.backlog",
    "handlers.sweeps",
    "handlers.reminders",
    "handlers.nudges",
    "handlers.digest",
    "handlers.lost",
    "handlers.requests",
    "handlers.sources",
    "handlers.imports",
    "handlers.due",  # last: it reads what the sweep's other handlers left due
)


def on(*event_types: type[Event]):
    """Mark an ``async def handler(event, ctx)`` as handling ``event_types``."""

    def mark(func: Handler) -> Handler:
        existing = getattr(func, "__plnbot_events__", ())
        vars(func)["__plnbot_events__"] = (*existing, *event_types)  # read back by getattr
        return func

    return mark


def collect_handlers(module_names: Iterable[str]) -> dict[type[Event], list[Handler]]:
    registry: dict[type[Event], list[Handler]] = defaultdict(list)
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            for event_type in getattr(value, "__plnbot_events__", ()):
                registry[event_type].append(value)
    return registry


class Dispatcher:
    """Turns an event into committed state plus queued outbox messages."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        clock: Clock = utcnow,
        senders: dict[str, WelcomeSender] | None = None,
        modules: Iterable[str] = HANDLER_MODULES,
        connector: AccountConnector | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.senders = senders or {}
        self.registry = collect_handlers(modules)
        self._connector = connector

    @property
    def connector(self) -> AccountConnector:
        """The platforms' side of ``connect …``: the real one unless one was given."""
        if self._connector is None:
            self._connector = default_connector(self.settings)
        return self._connector

    def handlers_for(self, event: Event) -> list[Handler]:
        found: list[Handler] = []
        for event_type in type(event).__mro__:
            found.extend(self.registry.get(event_type, ()))
        return found

    @contextmanager
    def open_context(self, owner_ref: str, key_prefix: str,
                     account_id: int | None = None) -> Iterator[Context]:
        """One transaction with its Context: committed when the block ends normally.
        ``account_id``: the account the event is about (``repo.scope_account``)."""
        with session_scope(self.engine) as session:
            owner = repo.get_or_create_owner(
                session, external_ref=owner_ref, settings=self.settings, now=self.clock()
            )
            repo.scope_account(session, account_id)
            yield Context(
                session=session,
                owner=owner,
                settings=self.settings,
                clock=self.clock,
                key_prefix=key_prefix,
                senders=self.senders,
                connector=self.connector,
            )

    async def dispatch(self, event: Event) -> bool:
        """Run every handler for ``event`` in one transaction, then its after-commit work.

        Returns False when a handler failed (and so nothing was changed)."""
        handlers = self.handlers_for(event)
        if not handlers and event.cursor is None:
            log.debug("no handler for %s", type(event).__name__)
            return True
        key_prefix = _key_prefix(event)
        try:
            with self.open_context(event.owner_ref, key_prefix, event.account_id) as ctx:
                if isinstance(event, CommandReceived) and already_answered(ctx, key_prefix):
                    log.info("command %s was already handled; not running it again",
                             event.message_id)
                    return True
                for handler in handlers:
                    await handler(event, ctx)
                if event.cursor is not None:
                    repo.save_source_cursor(ctx.session, owner=ctx.owner,
                                            platform=event.cursor.platform,
                                            cursor=event.cursor.value)
        except Exception:
            log.exception("handler failed for %s; nothing was changed", type(event).__name__)
            if isinstance(event, CommandReceived):
                self._report_internal_error(event, key_prefix)
            return False
        await self._after_commit(ctx.after_commit, event.owner_ref, key_prefix,
                                 event.account_id)
        return True

    async def _after_commit(self, jobs, owner_ref: str, key_prefix: str,
                            account_id: int | None = None) -> None:
        """Work that may only start once the state it depends on is durable."""
        for index, job in enumerate(jobs):
            prefix = f"{key_prefix}:after{index}"
            try:
                await job(lambda prefix=prefix: self.open_context(owner_ref, prefix,
                                                                  account_id))
            except Exception:
                log.exception("after-commit work %s failed", getattr(job, "__name__", job))

    def _report_internal_error(self, event: Event, key_prefix: str) -> None:
        with self.open_context(event.owner_ref, key_prefix + ":failed") as ctx:
            ctx.send(
                "error",
                "Sorry, something went wrong on my side and nothing was changed. "
                "The details are in the log; please try again.",
            )


ANSWER_SLOTS = 8  # a command answers within its first few messages


def already_answered(ctx: Context, key_prefix: str) -> bool:
    """Whether a command with this message id was handled before (its answer is in the
    outbox), so a DM read twice — caught up after a restart or a gateway hand-over —
    does not log, remind or send twice. Every command answers (``reply`` or ``error``),
    in the same transaction as its changes; commands without a message id always run.

    Looks up the exact keys its messages get (``<owner>:<prefix>:<n>``, see
    ``Context.send``) on the outbox's unique index: a ``LIKE 'prefix%'`` would scan the
    whole, ever-growing outbox on PostgreSQL and on SQLite for every command.
    """
    if not key_prefix.startswith("cmd:"):
        return False
    keys = [f"{ctx.owner.id}:{key_prefix}:{n}" for n in range(ANSWER_SLOTS)]
    return ctx.session.exec(
        select(OutboxMessage.id).where(col(OutboxMessage.idempotency_key).in_(keys)).limit(1)
    ).first() is not None


def _key_prefix(event: Event) -> str:
    if isinstance(event, CommandReceived) and event.message_id:
        return f"cmd:{event.message_id}"
    return f"{type(event).__name__}:{uuid.uuid4().hex}"
