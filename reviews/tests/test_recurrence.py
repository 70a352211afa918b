from datetime import UTC, date, datetime

import pytest

from reviews.recurrence import latest_due_occurrence, occurrence_date


@pytest.mark.parametrize(
    ("start", "recurrence", "k", "expected"),
    [
        (date(2026, 1, 31), "monthly", 1, date(2026, 2, 28)),
        (date(2026, 1, 31), "monthly", 2, date(2026, 3, 31)),
        (date(2027, 1, 31), "monthly", 1, date(2027, 2, 28)),
        (date(2028, 1, 31), "monthly", 1, date(2028, 2, 29)),  # leap year
        (date(2026, 11, 30), "quarterly", 1, date(2027, 2, 28)),
        (date(2026, 11, 30), "quarterly", 2, date(2027, 5, 30)),
        (date(2028, 2, 29), "annually", 1, date(2029, 2, 28)),
        (date(2028, 2, 29), "annually", 4, date(2032, 2, 29)),
        (date(2026, 8, 31), "semiannually", 1, date(2027, 2, 28)),
        (date(2026, 12, 28), "weekly", 1, date(2027, 1, 4)),
        (date(2026, 5, 1), "once", 0, date(2026, 5, 1)),
    ],
)
def test_occurrences_clamp_to_month_ends_and_come_back(start, recurrence, k, expected):
    assert occurrence_date(start=start, recurrence=recurrence, k=k) == expected


def test_a_one_off_review_has_one_occurrence():
    with pytest.raises(ValueError):
        occurrence_date(start=date(2026, 5, 1), recurrence="once", k=1)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 1, 30, tzinfo=UTC), None),
        (datetime(2026, 1, 31, tzinfo=UTC), 0),
        (datetime(2026, 4, 29, 23, 59, tzinfo=UTC), 0),
        (datetime(2026, 4, 30, tzinfo=UTC), 1),
        (datetime(2027, 1, 31, tzinfo=UTC), 4),
    ],
)
def test_latest_due_quarterly_occurrence(now, expected):
    assert latest_due_occurrence(start=date(2026, 1, 31), recurrence="quarterly", now=now) == expected
