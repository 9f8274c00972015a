"""Arrivals that come together are written together (group commit).

A Discord raid, a viral post or a poll that finds thirty new followers hands the app
many ``NewConnection`` events at once; Discord's gateway gives each its own task. One
transaction per arrival paid the commit, the search re-index, the owner and account
look-ups and the outbox claim once per person (about 13 ms each: 70 arrivals/s).
Here, arrivals handed over while a batch is being written wait for the next batch,
and each batch is one ``ArrivalsReceived`` transaction. A lone arrival is a batch of
one, written at once: nobody waits longer than before.

Every caller still returns only when its arrival is committed and the outbox has been
delivered, as ``App.handle`` promises for any event. A batch that fails is retried one
arrival at a time, so one unreadable profile cannot lose the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from itertools import groupby

from bot.events import ArrivalsReceived, Event, NewConnection, SourceCursor

log = logging.getLogger(__name__)

MAX_BATCH = 500  # arrivals per transaction: a bounded transaction and outbox delivery

Dispatch = Callable[[Event], Awaitable[bool]]
Flush = Callable[[], Awaitable[int]]


def last_cursor(events: list[NewConnection]) -> SourceCursor | None:
    """The place a batch of arrivals takes its source to: the last one given."""
    cursors = [event.cursor for event in events if event.cursor is not None]
    return cursors[-1] if cursors else None


class ArrivalQueue:
    """Collects ``NewConnection`` events and writes them in batches, in arrival order."""

    def __init__(self, dispatch: Dispatch, flush: Flush, *, max_batch: int = MAX_BATCH) -> None:
        self.dispatch = dispatch
        self.flush = flush
        self.max_batch = max_batch
        self._pending: list[tuple[NewConnection, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, event: NewConnection) -> None:
        """Return once ``event`` is committed and the outbox delivered."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((event, done))
        if self._writer is None or self._writer.done():
            # its own task: a caller that stops waiting (cancelling ``done``) must not
            # stop the writing of its own arrival or anyone else's
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        while self._pending:
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            try:
                await self._write([event for event, _ in batch])
            except asyncio.CancelledError:  # shutting down: nobody is left waiting forever
                for _, done in (*batch, *self._pending):
                    done.cancel()
                self._pending.clear()
                raise
            except Exception as exc:  # e.g. the database went away: these callers hear it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _write(self, events: list[NewConnection]) -> None:
        # one transaction per owner and account (an owner may have two servers)
        for (owner_ref, account_id), group in groupby(
                events, key=lambda event: (event.owner_ref, event.account_id)):
            arrivals = list(group)
            if len(arrivals) == 1:
                await self.dispatch(arrivals[0])
            elif not await self.dispatch(ArrivalsReceived(owner_ref=owner_ref,
                                                          arrivals=arrivals,
                                                          cursor=last_cursor(arrivals),
                                                          account_id=account_id)):
                log.warning("writing %d arrivals together failed; writing them one by one",
                            len(arrivals))
                await self._write_one_by_one(arrivals)
        await self.flush()

    async def _write_one_by_one(self, arrivals: list[NewConnection]) -> None:
        """After one fails, the rest are still written but move no cursor: the source
        fetches the failed one (and those after it) again on its next poll."""
        failed = False
        for arrival in arrivals:
            if failed and arrival.cursor is not None:
                arrival = replace(arrival, cursor=None)
            failed = not await self.dispatch(arrival) or failed
