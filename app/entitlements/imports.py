"""Usage by file: a CSV of events, each row recorded (idempotently) or rejected with its reason."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.clock import now
from app.entitlements.checks import whole_number
from app.entitlements.errors import InvalidUsage, UsageError
from app.entitlements.recording import CommitPart
from app.entitlements.usage import (
    MAX_BATCH,
    UsageEventInput,
    UsageResult,
    customer_by_reference,
    record_batch,
)

REQUIRED_COLUMNS = (
    "customer_reference_id",
    "feature_key",
    "units",
    "idempotency_key",
    "event_name",
)
# Stripe accepts meter events at most five minutes ahead of its clock.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class ImportedRow:
    """A row recorded now, or recorded before (``result.replayed``)."""

    line: int
    result: UsageResult


@dataclass(frozen=True)
class RejectedRow:
    """A row not recorded, and why."""

    line: int
    code: str
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """Every data row of the file, either recorded or rejected."""

    recorded: list[ImportedRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def import_usage_csv(text: str, commit_part: CommitPart) -> ImportReport:
    """Record the events of a CSV file; columns as in REQUIRED_COLUMNS, plus ``timestamp``.
    A batch may commit what it recorded through ``commit_part`` (see record_batch)."""
    reader = csv.DictReader(io.StringIO(text))
    report = ImportReport()
    parsed: list[tuple[int, UsageEventInput]] = []
    # The whole file is read before anything is recorded: a file that is not CSV records nothing.
    try:
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise InvalidUsage(
                f"The file has no column {', '.join(missing)}.", code="missing_columns"
            )
        for row in reader:
            try:
                parsed.append((reader.line_num, _event(row)))
            except InvalidUsage as exc:
                report.rejected.append(RejectedRow(reader.line_num, exc.code, str(exc)))
    except csv.Error as exc:
        raise InvalidUsage(
            f"The file is not CSV after line {reader.line_num} ({exc}); nothing was recorded.",
            code="invalid_csv",
        ) from None
    for start in range(0, len(parsed), MAX_BATCH):
        chunk = parsed[start : start + MAX_BATCH]
        outcomes = record_batch(customer_by_reference, [event for _, event in chunk], commit_part)
        for (line, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, UsageError):
                report.rejected.append(RejectedRow(line, outcome.code, str(outcome)))
            else:
                report.recorded.append(ImportedRow(line, outcome))
    report.rejected.sort(key=lambda rejected: rejected.line)
    return report


def _event(row: dict[str, str | None]) -> UsageEventInput:
    text = (row.get("units") or "").strip()
    units = whole_number(text)
    if units is None:
        raise InvalidUsage(f"units {text[:40]!r} is not a whole number.", code="invalid_units")
    if any("\x00" in value for value in row.values() if isinstance(value, str)):
        raise InvalidUsage("The row holds a NUL character.", code="invalid_text")
    return UsageEventInput(
        customer_reference_id=(row.get("customer_reference_id") or "").strip(),
        idempotency_key=(row.get("idempotency_key") or "").strip(),
        event_name=(row.get("event_name") or "").strip(),
        feature_key=(row.get("feature_key") or "").strip(),
        units=units,
        occurred_at=_timestamp((row.get("timestamp") or "").strip()),
    )


def _timestamp(value: str) -> datetime | None:
    """ISO 8601 with a zone, or Unix seconds; empty means now."""
    if not value:
        return None
    seconds = whole_number(value)
    try:
        at = (
            datetime.fromtimestamp(seconds, UTC)
            if seconds is not None
            else datetime.fromisoformat(value)
        )
    except (ValueError, OverflowError, OSError):  # not a date, or past the years datetime holds
        at = None
    if at is None or at.tzinfo is None:
        raise InvalidUsage(
            f"timestamp {value[:40]!r} is neither ISO 8601 with a zone nor Unix seconds.",
            code="invalid_timestamp",
        )
    if at > now() + FUTURE_TOLERANCE:
        raise InvalidUsage(f"timestamp {value[:40]!r} is in the future.", code="invalid_timestamp")
    return at.astimezone(UTC)
