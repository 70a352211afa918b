"""common.ids.uuid7: time-ordered primary keys for the tables every activation appends to."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from common.ids import uuid7
from tests.factories import ActiveAssignmentFactory, EligibleAssignmentFactory

MOMENT = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def millis_of(value) -> int:
    return value.int >> 80


def test_a_version_7_uuid_of_the_rfc_variant_carrying_the_time_in_milliseconds():
    with time_machine.travel(MOMENT, tick=False):
        value = uuid7()

    assert value.version == 7
    assert value.variant == "specified in RFC 4122"
    assert millis_of(value) == int(MOMENT.timestamp() * 1000)


def test_ids_made_later_sort_after_and_ids_of_one_millisecond_still_differ():
    with time_machine.travel(MOMENT, tick=False) as clock:
        same_moment = {uuid7() for _ in range(1000)}
        clock.shift(timedelta(milliseconds=1))
        later = uuid7()

    assert len(same_moment) == 1000  # 74 random bits each
    assert all(earlier < later for earlier in same_moment)


@pytest.mark.django_db
@pytest.mark.parametrize("factory", [ActiveAssignmentFactory, EligibleAssignmentFactory])
def test_assignments_get_time_ordered_ids(factory):
    """(Activation requests: activations/tests/test_services.py.)"""
    with time_machine.travel(MOMENT, tick=False):
        row = factory()

    assert row.pk.version == 7
    assert millis_of(row.pk) == int(MOMENT.timestamp() * 1000)
