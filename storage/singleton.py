"""A lock that at most one process on the database holds: who may hold a connection
that must exist only once (the Discord gateway of a bot shared by several workers).

On PostgreSQL it is a session-level advisory lock (``pg_try_advisory_lock``) taken on a
connection kept open for as long as it is held. The server drops it with the session,
so a worker that dies — crash, ``kill -9``, lost machine — frees it at once, and a
worker that loses its connection finds out at its next ``still_held`` and must stop
acting as the holder. SQLite has one process by design, so there the lock is always
granted.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (what pg_try_advisory_lock takes)."""
    digest = hashlib.blake2b(f"plnbot:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SingletonLock:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.shared = engine.dialect.name == "postgresql"
        self.connection: Connection | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True while this process holds it."""
        if self.held:
            return True
        if not self.shared:
            self.held = True
            return True
        try:
            self.connection = self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
            self.held = bool(self.connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except Exception as exc:  # the database is away: nobody new can take it either
            log.warning("cannot try the %s lock (%s)", self.name, type(exc).__name__)
            self.held = False
        if not self.held:
            self._drop_connection()
        return self.held

    def still_held(self) -> bool:
        """Whether the lock is still ours: its session is alive (a dropped connection
        means the server has already released it, maybe to another worker)."""
        if not self.held or not self.shared:
            return self.held
        assert self.connection is not None, "a held PostgreSQL lock keeps its connection"
        try:
            self.connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("lost the %s lock: its database connection failed (%s)",
                        self.name, type(exc).__name__)
            self.release()
        return self.held

    def release(self) -> None:
        """Give the lock up by ending its session (never back into the pool with it)."""
        self.held = False
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        try:
            connection.invalidate()  # closes the session, so the server frees the lock
            connection.close()
        except Exception:  # already broken: the server has freed it
            log.debug("closing the %s lock connection failed", self.name, exc_info=True)
