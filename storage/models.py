"""SQLModel tables for plnbot's durable state.

Every row belongs to an owner (``owner_id``) so that no query can cross from one
owner's network into another's. Times are aware UTC ``datetime`` values (SQLModel's
``UTCDateTime`` refuses naive ones, which catches a whole class of time zone bugs);
the owner's time zone is applied only for display and for parsing what they write.

Primary keys are typed ``int``: a row's ``id`` is ``None`` only between ``session.add``
and the next flush, and code reads ids only of rows it has loaded or flushed, so
``int | None`` would make every use narrow a ``None`` that cannot happen there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, LargeBinary, Table, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel


class Owner(SQLModel, table=True):
    """The person the bot works for, with their preferences."""

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    external_ref: str = Field(index=True, unique=True, max_length=200)
    name: str = Field(default="", max_length=200)
    tz: str = Field(default="UTC", max_length=64)
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    tone: str = Field(default="warm", max_length=16)
    signature: str = Field(default="", max_length=200)
    field: str = Field(default="education", max_length=32)
    interests: str = Field(default="", max_length=1000)
    bio: str = Field(default="", max_length=2000)
    digest_weekday: int = Field(default=0)  # 0 = Monday, in the owner's time zone
    digest_time: str = Field(default="09:00", max_length=5)
    report_losses: str = Field(default="digest", max_length=16)  # "digest" | "immediate"
    # "day-first" | "month-first" | None: as people in the owner's time zone write dates
    date_order: str | None = Field(default=None, max_length=16)
    created_at: datetime
    # Multi-owner workers (``plnbot run --worker``): when this owner's periodic sweep is
    # next due (None: now), and which worker is serving the owner (see storage/leases.py).
    next_sweep_at: datetime | None = Field(default=None, index=True)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None)


class Account(SQLModel, table=True):
    """One of the owner's own accounts on a platform, with its sync state.

    An owner may have several accounts on one platform (two Discord servers, a personal
    and a school Mastodon account), each told apart by its id there (``external_id``).
    That id is empty until the account's first poll (the environment's account) or
    while a connection waits for its pasted code: one such row per owner and platform.
    """

    __table_args__ = (
        UniqueConstraint("owner_id", "platform", "external_id",
                         name="uq_account_owner_platform_external"),
        # who connected this server? (a Discord member event names only the server)
        Index("ix_account_platform_external_id", "platform", "external_id"),
    )

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    platform: str = Field(max_length=16)
    external_id: str = Field(default="", max_length=200)
    handle: str = Field(default="", max_length=200)
    baseline_done: bool = Field(default=False)
    cursor: str | None = Field(default=None, max_length=500)
    followers_count_seen: int | None = Field(default=None)
    last_synced_at: datetime | None = Field(default=None)
    last_reconciled_at: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    last_error_at: datetime | None = Field(default=None)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None)
    # Connected by chat (``connect …``): the platform credentials as one Fernet token
    # (bot/secrets.py, PLNBOT_SECRET_KEY), never plain text; None for the environment's
    # accounts. ``connected_at`` is None while a connection waits for its pasted code.
    credentials: str | None = Field(default=None)
    connected_at: datetime | None = Field(default=None)
    # polls of connected accounts (bot/connected.py): the next one is due at
    # ``next_poll_at``; ``last_polled_at`` is what ``accounts`` shows
    next_poll_at: datetime | None = Field(default=None, index=True)
    last_polled_at: datetime | None = Field(default=None)
    # A Discord server connected by chat: the channel its welcomes are posted in
    # (``connect discord-server <id> <channel id>``); None sends them as DMs.
    welcome_channel: str | None = Field(default=None, max_length=32)
    # the platform said this account's request budget is spent until then (429, or a
    # remaining count of 0): no worker polls it before, whatever ``next_poll_at`` says
    rate_limited_until: datetime | None = Field(default=None)


class PlatformApp(SQLModel, table=True):
    """The bot's own application on one server (a Mastodon instance), registered once and
    shared by every owner who connects an account there; its secret is encrypted."""

    __table_args__ = (UniqueConstraint("platform", "instance", name="uq_platformapp_instance"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    instance: str = Field(max_length=500)
    credentials: str
    created_at: datetime


class Contact(SQLModel, table=True):
    """A person in the owner's network; may have several handles."""

    # every arrival looks for look-alikes by full name (repo.contacts_named); the profile
    # backlog (handlers.backlog) finds its next contacts in a partial index of them alone
    __table_args__ = (
        Index("ix_contact_owner_lower_name", "owner_id", func.lower(text("name"))),
        Index("ix_contact_profile_pending", "owner_id", "id",
              sqlite_where=text("profile_pending"), postgresql_where=text("profile_pending")),
    )

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    # no index of its own: ix_contact_owner_lower_name starts with it (migration 0015)
    owner_id: int = Field(foreign_key="owner.id")
    name: str = Field(default="", max_length=300)
    first_name: str | None = Field(default=None, max_length=100)
    bio: str = Field(default="", max_length=5000)
    role: str | None = Field(default=None, max_length=200)
    organisation: str | None = Field(default=None, max_length=300)
    location: str | None = Field(default=None, max_length=300)
    website: str | None = Field(default=None, max_length=500)
    field: str = Field(default="other", max_length=32)
    interests: str = Field(default="", max_length=1000)  # comma separated
    how_met: str = Field(default="", max_length=300)
    merged_into_id: int | None = Field(default=None, foreign_key="contact.id")
    last_conversation_at: datetime | None = Field(default=None, index=True)
    created_at: datetime
    # stored by a first sync, not yet understood nor indexed (handlers.backlog)
    profile_pending: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


class Handle(SQLModel, table=True):
    """A contact's identity on one platform."""

    __table_args__ = (
        UniqueConstraint("owner_id", "platform", "external_id", name="uq_handle_identity"),
        Index("ix_handle_owner_handle", "owner_id", "handle"),
    )

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    # no index of its own: uq_handle_identity and ix_handle_owner_handle start with it
    owner_id: int = Field(foreign_key="owner.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    platform: str = Field(max_length=16)
    external_id: str = Field(max_length=200)
    handle: str = Field(max_length=300)  # lower-case, without a leading "@"
    display_handle: str = Field(default="", max_length=300)
    profile_json: str = Field(default="{}")
    accepts_dms: bool | None = Field(default=None)
    # a checksum of the profile as last stored, so a sync rewrites only changed profiles
    profile_hash: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime


class Connection(SQLModel, table=True):
    """The state between one of the owner's accounts and a handle."""

    __table_args__ = (
        UniqueConstraint("account_id", "handle_id", "kind", name="uq_connection"),
        Index("ix_connection_account_state", "account_id", "state"),
    )

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    account_id: int = Field(foreign_key="account.id")
    handle_id: int = Field(foreign_key="handle.id", index=True)
    kind: str = Field(default="follower", max_length=16)  # follower | following | member
    state: str = Field(default="active", max_length=16)  # active | lost | vanished
    since: datetime
    lost_at: datetime | None = Field(default=None)
    lost_cause: str | None = Field(default=None, max_length=200)
    mass_drop_id: int | None = Field(default=None, foreign_key="massdrop.id")


class ConnectionEvent(SQLModel, table=True):
    """Something that happened to a connection: gained, lost, returned, vanished, severed."""

    __table_args__ = (Index("ix_connevent_owner_at", "owner_id", "at"),)

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id")
    connection_id: int = Field(foreign_key="connection.id", index=True)
    kind: str = Field(max_length=16)
    at: datetime
    detail: str = Field(default="", max_length=500)
    reported: bool = Field(default=False)


class MassDrop(SQLModel, table=True):
    """A sudden mass loss held as a probable platform problem and re-checked."""

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    account_id: int = Field(foreign_key="account.id")
    detected_at: datetime
    count: int
    checks: int = Field(default=0)
    next_check_at: datetime
    status: str = Field(default="open", max_length=16)  # open | resolved | given_up
    still_missing: int = Field(default=0)  # as last reported to the owner
    closed_at: datetime | None = Field(default=None)


class Interaction(SQLModel, table=True):
    """A logged conversation, a note or a sent welcome."""

    __table_args__ = (Index("ix_interaction_contact_at", "contact_id", "at"),)

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    contact_id: int = Field(foreign_key="contact.id")
    kind: str = Field(max_length=16)  # conversation | note | welcome
    text: str = Field(default="", max_length=4000)
    tags: str = Field(default="", max_length=1000)  # space separated, lower-case, no "#"
    at: datetime


class Draft(SQLModel, table=True):
    """A drafted welcome awaiting the owner's decision."""

    __table_args__ = (
        Index("ix_draft_owner_status", "owner_id", "status"),
        Index("ix_draft_owner_id", "owner_id", "id"),  # an owner's newest drafts first
    )

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    handle_id: int = Field(foreign_key="handle.id")
    platform: str = Field(max_length=16)
    text: str = Field(max_length=10000)
    status: str = Field(default="pending", max_length=16)  # pending|sent|skipped|expired
    edited: bool = Field(default=False)
    send_url: str | None = Field(default=None, max_length=12000)
    created_at: datetime
    decided_at: datetime | None = Field(default=None)
    expires_at: datetime | None = Field(default=None)


class Reminder(SQLModel, table=True):
    """An explicit reminder or a follow-up prompt, due at a UTC time."""

    __table_args__ = (Index("ix_reminder_status_due", "status", "due_at"),)

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    kind: str = Field(default="reminder", max_length=16)  # reminder | followup
    text: str = Field(default="", max_length=1000)
    due_at: datetime
    recurrence: str | None = Field(default=None, max_length=100)
    status: str = Field(default="open", max_length=16)  # open|delivered|done|cancelled
    delivered_at: datetime | None = Field(default=None)
    created_at: datetime
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None)


class Cadence(SQLModel, table=True):
    """A keep-in-touch rule for one person or for everyone with a tag."""

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    tag: str | None = Field(default=None, max_length=100)
    every_days: int
    created_at: datetime
    last_nudged_at: datetime | None = Field(default=None)


class Goal(SQLModel, table=True):
    """A weekly habit target."""

    __table_args__ = (UniqueConstraint("owner_id", "kind", name="uq_goal_owner_kind"),)

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id")
    kind: str = Field(max_length=16)  # conversations | connections | outside
    per_week: int
    created_at: datetime


class OutboxMessage(SQLModel, table=True):
    """A message to the owner, written with the state change that caused it.

    The idempotency key makes a retried handler or a re-delivered event produce
    the same row, never a second message.
    """

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        # the pending messages by id, for the claims (they no longer read past sent rows)
        Index("ix_outbox_pending_id", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id", index=True)
    idempotency_key: str = Field(unique=True, max_length=200)
    kind: str = Field(max_length=32)
    text: str
    payload_json: str = Field(default="{}")
    status: str = Field(default="pending", max_length=16)  # pending | sent | failed
    attempts: int = Field(default=0)
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None)
    # a file that travels with the message (the digest's chart PNG): stored here, so any
    # worker on any machine delivers it; written to the deliverer's own disk on delivery
    attachment: bytes | None = Field(default=None, sa_type=LargeBinary)


class JobRun(SQLModel, table=True):
    """When a periodic job (digest, nudges) last ran for an owner, so restarts catch up once."""

    __table_args__ = (UniqueConstraint("owner_id", "job", name="uq_jobrun_owner_job"),)

    id: int = Field(default=None, primary_key=True)  # None only until flushed: see the module note
    owner_id: int = Field(foreign_key="owner.id")
    job: str = Field(max_length=64)
    last_run_at: datetime


class UndoEntry(SQLModel, table=True):
    """One change the owner made by command, with what it takes to reverse it.

    ``changes_json`` lists the rows the command touched, oldest first: a row it
    inserted (undo deletes it), or a row's values before the command (undo puts them
    back, re-inserting the row if it was deleted). ``undo`` reverses the newest entry
    not yet undone.
    """

    __table_args__ = (Index("ix_undoentry_owner_id", "owner_id", "id"),)

    id: int = Field(default=None, primary_key=True)  # None only until flushed
    owner_id: int = Field(foreign_key="owner.id")
    command: str = Field(max_length=4000)
    summary: str = Field(default="", max_length=4000)
    changes_json: str = Field(default="[]")
    at: datetime
    undone_at: datetime | None = Field(default=None)


class PendingPrompt(SQLModel, table=True):
    """A question the bot asked and waits for the owner to answer on their next line:
    a ``link`` awaiting ``yes``, or a numbered choice. Anything else typed drops it.
    Kept in the database so a restart in between changes nothing."""

    id: int = Field(default=None, primary_key=True)  # None only until flushed
    owner_id: int = Field(foreign_key="owner.id", unique=True)
    kind: str = Field(max_length=16)  # confirm | choice
    payload_json: str = Field(default="{}")
    created_at: datetime


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy ``Table`` behind a table model, for Core statements.

    SQLModel sets ``model.__table__`` when the class is made but does not declare it,
    so a type checker cannot see it; this reads the same object with its type."""
    table = model.__table__  # type: ignore[attr-defined]  # set by SQLModel, undeclared
    assert isinstance(table, Table), f"{model.__name__} is not a table model"
    return table
