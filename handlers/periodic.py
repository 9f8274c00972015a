"""Shared helpers for the sweep's periodic work: quiet hours and "when did this job last run".

The scheduler only fires ``Tick("sweep")``; whether a weekly job (digest, mid-week
nudge) is due is decided here from ``JobRun`` rows, so a restart neither skips nor
repeats one.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from handlers.when import in_quiet_hours
from storage.models import JobRun, Owner


def is_quiet(owner: Owner, now: datetime) -> bool:
    """Whether the owner asked not to be disturbed right now (their zone, across midnight)."""
    return in_quiet_hours(quiet_start=owner.quiet_start, quiet_end=owner.quiet_end,
                          tz=owner.tz, now=now)


def last_run(session: Session, *, owner: Owner, job: str) -> datetime | None:
    row = session.exec(
        select(JobRun).where(JobRun.owner_id == owner.id, JobRun.job == job)
    ).first()
    return row.last_run_at if row else None


def mark_run(session: Session, *, owner: Owner, job: str, at: datetime) -> None:
    row = session.exec(
        select(JobRun).where(JobRun.owner_id == owner.id, JobRun.job == job)
    ).first()
    if row is None:
        row = JobRun(owner_id=owner.id, job=job, last_run_at=at)
    row.last_run_at = at
    session.add(row)
    session.flush()
