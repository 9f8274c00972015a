"""Many owners with due work, inserted in bulk (multi-worker tests)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from storage.models import OutboxMessage, Owner, Reminder


def seed_owners(engine: Engine, count: int, *, now: datetime, prefix: str = "owner") -> list[int]:
    rows = [{"external_ref": f"{prefix}-{n}", "name": "", "tz": "UTC", "tone": "warm",
             "signature": "", "field": "education", "interests": "", "bio": "",
             "digest_weekday": 0, "digest_time": "09:00", "report_losses": "digest",
             "created_at": now} for n in range(count)]
    with engine.begin() as conn:
        conn.execute(insert(Owner), rows)
        return list(conn.execute(
            select(Owner.id).where(Owner.external_ref.startswith(f"{prefix}-"))
            .order_by(Owner.id)).scalars())


def seed_outbox(engine: Engine, owner_ids: list[int], per_owner: int, *,
                now: datetime) -> list[str]:
    """``per_owner`` due messages for each owner; returns their idempotency keys."""
    rows = [{"owner_id": owner_id, "idempotency_key": f"{owner_id}:test:{n}", "kind": "reminder",
             "text": f"message {n} for owner {owner_id}", "payload_json": "{}",
             "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for owner_id in owner_ids for n in range(per_owner)]
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage), rows)
    return [row["idempotency_key"] for row in rows]


def seed_reminders(engine: Engine, owner_ids: list[int], per_owner: int, *,
                   due_at: datetime, now: datetime) -> list[int]:
    """``per_owner`` open reminders due at ``due_at`` for each owner; returns their ids."""
    rows = [{"owner_id": owner_id, "kind": "reminder", "text": f"task {n}", "due_at": due_at,
             "status": "open", "created_at": now}
            for owner_id in owner_ids for n in range(per_owner)]
    with engine.begin() as conn:
        conn.execute(insert(Reminder), rows)
        return list(conn.execute(select(Reminder.id).order_by(Reminder.id)).scalars())
