"""Periodic jobs run once per slot, however many workers' schedulers enqueue them.

Every worker runs Huey's scheduler, so at 02:00 each enqueues the nightly job. The first run to
insert (job, slot) into ``periodic_runs`` does the work; the others find the row and skip. A run
whose worker died leaves its row unfinished: after the job's lease another run takes the slot
over. The work itself is a sweep over what the database says is owed, so a skipped or lost
slot is caught up by the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, String, Text, UniqueConstraint, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base, UTCDateTime, db

log = logging.getLogger(__name__)


class PeriodicRun(Base):
    """One slot of a periodic job: when it was started (again), whether it finished, and how."""

    __tablename__ = "periodic_runs"
    __table_args__ = (UniqueConstraint("job", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    slot: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How many runs claimed the slot: more than one only when a run's worker died.
    runs: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str | None] = mapped_column(Text)


def minute_slot(at: datetime) -> str:
    """The slot of a job that runs every minute."""
    return at.strftime("%Y-%m-%dT%H:%M")


def day_slot(at: datetime) -> str:
    """The slot of a job that runs once a day."""
    return at.strftime("%Y-%m-%d")


def wall_clock() -> datetime:
    """The worker's schedule follows real time (the sandbox's clock moves only billing)."""
    return datetime.now(UTC)


def run_once_per_slot(job: str, slot: str, lease: timedelta, work: Callable[[], object]) -> bool:
    """Run ``work`` if this run claims the slot, and mark the slot finished (or failed, with
    its error); whether it ran. The claim is committed before the work starts, and the work
    owns its own transactions."""
    if not _claim(job, slot, lease):
        log.info("periodic job %s slot %s is another run's; skipped", job, slot)
        return False
    try:
        work()
    except Exception as exc:
        db.session.rollback()
        _finish(job, slot, error=f"{type(exc).__name__}: {exc}"[:2000], finished=False)
        raise
    _finish(job, slot, error=None, finished=True)
    return True


def _claim(job: str, slot: str, lease: timedelta) -> bool:
    started = wall_clock()
    db.session.add(PeriodicRun(job=job, slot=slot, started_at=started, runs=1))
    try:
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
    # Taken: ours only if its run never finished and its lease ran out (the worker died).
    taken_over = db.session.execute(
        update(PeriodicRun)
        .where(
            PeriodicRun.job == job,
            PeriodicRun.slot == slot,
            PeriodicRun.finished_at.is_(None),
            PeriodicRun.started_at < started - lease,
        )
        .values(started_at=started, runs=PeriodicRun.runs + 1)
    )
    db.session.commit()
    return bool(taken_over.rowcount)  # type: ignore[attr-defined]


def _finish(job: str, slot: str, *, error: str | None, finished: bool) -> None:
    db.session.execute(
        update(PeriodicRun)
        .where(PeriodicRun.job == job, PeriodicRun.slot == slot)
        .values(finished_at=wall_clock() if finished else None, last_error=error)
    )
    db.session.commit()
