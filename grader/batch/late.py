"""The late policy of `assignment.toml`'s `[late]` table, applied to one submission time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from grader.results import Lateness
from grader.spec import LatePolicy

DAY = timedelta(days=1)


def fmt_number(x: float) -> str:
    """A score as people write it: at most 4 decimals, no trailing zeros, never `-0` or an exponent."""
    text = f"{round(x, 4):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_time(t: datetime) -> str:
    """`2026-10-11 23:59 +08:00`: minutes are the policy's resolution; the offset keeps it unambiguous."""
    offset = t.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{t:%Y-%m-%d %H:%M} {sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def days_late(policy: LatePolicy, submitted_at: datetime) -> int:
    """Started days past the due date plus grace; 0 when on time. `submitted_at` must be aware."""
    late_by = submitted_at - policy.due - timedelta(minutes=policy.grace_minutes)
    if late_by <= timedelta(0):
        return 0
    # Ceiling in integer microseconds (timedelta // timedelta), so day boundaries never wobble with floats.
    return -((-late_by) // DAY)


def penalty_fraction(policy: LatePolicy, days: int) -> float:
    if days <= 0:
        return 0.0
    if policy.max_days is not None and days > policy.max_days:
        return 1.0
    return round(min(1.0, days * policy.penalty_per_day), 6)


def _submitted(submitted_at: datetime, due: datetime, source: str) -> str:
    """`submitted <time> (<source>)`, the time shown in the due date's zone. `submitted_at` must be aware."""
    where = f" ({source})" if source else ""
    return f"submitted {fmt_time(submitted_at.astimezone(due.tzinfo))}{where}"


def lateness(policy: LatePolicy, submitted_at: datetime | None, source: str, earned: float) -> Lateness:
    """How late a submission was and what it costs: `penalty_per_day` of `earned` per started day.

    A naive `submitted_at` is read as UTC (and the message says so); an unknown one costs nothing.
    """
    due = fmt_time(policy.due)
    if submitted_at is None:
        return Lateness(
            submitted_at=None,
            submitted_at_source=source,
            due=policy.due,
            message=(
                f"submission time unknown, so no late penalty was applied (due {due}). To apply the late policy, "
                "grade an export that records submission times (Gradescope's submission_metadata.yml), or give "
                "each student's time in the roster's submitted_at column (file and zip times are not used)."
            ),
        )
    note = ""
    if submitted_at.tzinfo is None or submitted_at.utcoffset() is None:
        submitted_at = submitted_at.replace(tzinfo=timezone.utc)
        note = "; the time had no time zone and was read as UTC"
    head = _submitted(submitted_at, policy.due, source)
    days = days_late(policy, submitted_at)
    fraction = penalty_fraction(policy, days)
    penalty = round(earned * fraction, 4)
    if days == 0:
        after = submitted_at - policy.due
        if after > timedelta(0):
            grace = _plural(policy.grace_minutes, "minute")
            body = f"after the due date {due} but within the {grace} of grace: no penalty"
        else:
            body = f"on time (due {due})"
        message = f"{head}, {body}{note}"
    else:
        grace = f" and its {_plural(policy.grace_minutes, 'minute')} of grace" if policy.grace_minutes else ""
        cost = f"-{fmt_number(fraction * 100)}% of {fmt_number(earned)} = -{fmt_number(penalty)} points"
        if policy.max_days is not None and days > policy.max_days:
            cost = f"more than {_plural(policy.max_days, 'day')} late earns 0: {cost}"
        when = f"{_plural(days, 'day')} late (started days after the due date {due}{grace})"
        message = f"{head}, {when}: {cost}{note}"
    return Lateness(
        submitted_at=submitted_at,
        submitted_at_source=source,
        due=policy.due,
        days_late=days,
        penalty_fraction=fraction,
        penalty=penalty,
        message=message,
    )


def message_without_points(late: Lateness) -> str:
    """`late.message` for a view that holds the total back: when, how late and the fraction, but no points,
    since the penalty, or the earned total it was taken from, would give the held-back total away."""
    if late.submitted_at is None or late.days_late == 0:
        return late.message  # no time or on time: these messages state no points
    head = _submitted(late.submitted_at, late.due, late.submitted_at_source)
    return (f"{head}, {_plural(late.days_late, 'day')} late (due {fmt_time(late.due)}): "
            f"-{fmt_number(late.penalty_fraction * 100)}% of the total")  # fmt: skip
