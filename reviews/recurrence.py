"""When the runs of a review definition start (SPEC 2.5).

Occurrence k is counted from the definition's start date, never from the previous run, so a
review starting on 31 January runs on 28/29 February, 31 March, 30 April... (month ends are
clamped per month, and the day comes back when the month has it).
"""

from datetime import UTC, date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta

_MONTHS = {"monthly": 1, "quarterly": 3, "semiannually": 6, "annually": 12}


def occurrence_date(*, start: date, recurrence: str, k: int) -> date:
    if k < 0:
        raise ValueError("occurrences count from 0")
    if recurrence == "once":
        if k:
            raise ValueError("a one-off review has a single occurrence")
        return start
    if recurrence == "weekly":
        return start + timedelta(weeks=k)
    return start + relativedelta(months=_MONTHS[recurrence] * k)


def occurrence_start(*, start: date, recurrence: str, k: int) -> datetime:
    """Runs start at 00:00 UTC on their day."""
    return datetime.combine(occurrence_date(start=start, recurrence=recurrence, k=k), time.min, tzinfo=UTC)


def latest_due_occurrence(*, start: date, recurrence: str, now: datetime) -> int | None:
    """The last occurrence whose start is at or before now, or None if none has started."""
    if occurrence_start(start=start, recurrence=recurrence, k=0) > now:
        return None
    if recurrence == "once":
        return 0
    if recurrence == "weekly":
        return (now.date() - start).days // 7
    step = _MONTHS[recurrence]
    months = (now.year - start.year) * 12 + (now.month - start.month)
    k = max(months // step, 0)
    # Clamping can put occurrence k after now (e.g. the 31st): step back while it does.
    while k > 0 and occurrence_start(start=start, recurrence=recurrence, k=k) > now:
        k -= 1
    return k


# The shortest gap between two runs of each recurrence, in days (month ends clamped: a monthly
# run from 31 January comes back on 28 February; three months from 1 February is 89 days).
SHORTEST_INTERVAL_DAYS = {"weekly": 7, "monthly": 28, "quarterly": 89, "semiannually": 181, "annually": 365}


def shortest_interval_days(recurrence: str) -> int | None:
    """The fewest days between two runs, or None for a one-off review."""
    return SHORTEST_INTERVAL_DAYS.get(recurrence)
