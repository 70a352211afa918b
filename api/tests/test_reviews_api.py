"""Access reviews through the API: a reviewer's items and decisions, one by one or in bulk;
only their own items (404 for the rest), all or nothing, nothing after the end."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from reviews.models import ReviewItem
from reviews.tests.helpers import definition_create, start
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

from .helpers import error

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/reviews/items/"
BULK = "/api/v1/reviews/items/decisions/"
ENDED = "This review has ended; decisions can no longer be changed."


def decision_url(item) -> str:
    return f"{ITEMS}{item.pk}/decision/"


def reports_of(manager, role, count: int, prefix: str) -> list:
    users = [UserFactory(username=f"{prefix}{n}", manager=manager) for n in range(count)]
    for user in users:
        EligibleAssignmentFactory(user=user, role=role, ends_at=timezone.now() + timedelta(days=200))
    return users


@pytest.fixture
def run(reviewer, outsider):
    """Two reports of the reviewer and one of the outsider under review (managers review)."""
    role = RoleFactory(name="Payroll Administrator")
    reports_of(reviewer, role, 2, prefix="report")
    reports_of(outsider, role, 1, prefix="theirs")
    return start(definition_create(roles=[role], name="Payroll quarterly", justification_required=True))


def item_of(run, username) -> ReviewItem:
    return run.items.get(user__username=username)


def decisions_recorded() -> list:
    return list(AuditEvent.objects.filter(action="review.decided").order_by("seq"))


# --- Who may -------------------------------------------------------------------------------


def test_anonymous_callers_get_401(run, anonymous):
    item = item_of(run, "report0")
    answers = [
        anonymous.get(ITEMS),
        anonymous.post(decision_url(item), {"decision": "approve", "justification": "x"}),
        anonymous.post(BULK, {"items": [str(item.pk)], "decision": "approve", "justification": "x"}),
    ]

    assert [response.status_code for response in answers] == [401, 401, 401]
    assert error(answers[0])["code"] == "not_authenticated"
    assert not decisions_recorded()


def test_reviewers_list_only_the_items_assigned_to_them(run, reviewer, outsider, requester, token_client):
    mine = token_client(reviewer).get(ITEMS).json()["results"]
    theirs = token_client(outsider).get(ITEMS).json()["results"]
    nobodys = token_client(requester).get(ITEMS).json()["results"]

    assert [item["principal"] for item in mine] == ["Report0 <report0>", "Report1 <report1>"]
    assert [item["principal"] for item in theirs] == ["Theirs0 <theirs0>"]
    assert nobodys == []
    first = mine[0]
    assert first["review"] == "Payroll quarterly" and first["instance"] == str(run.pk)
    assert first["role"]["name"] == "Payroll Administrator"
    assert first["assignment_type"] == "eligible" and first["scope"] == "/"
    assert first["decision"] == "" and first["decided_by"] is None
    assert first["recommendation"] == "deny"  # never activated in the last 30 days


def test_an_item_not_assigned_to_me_is_a_404_and_stays_undecided(run, reviewer, token_client):
    theirs = item_of(run, "theirs0")
    client = token_client(reviewer)

    not_mine = client.post(decision_url(theirs), {"decision": "deny", "justification": "Gone"})
    unknown = client.post(f"{ITEMS}{uuid.uuid4()}/decision/", {"decision": "deny"})

    assert not_mine.status_code == unknown.status_code == 404
    assert error(not_mine) == error(unknown)  # the same answer: existence is not leaked
    theirs.refresh_from_db()
    assert theirs.decision == "" and not decisions_recorded()


def test_a_listed_filter_that_is_not_known_is_a_400(reviewer, token_client):
    response = token_client(reviewer).get(ITEMS, {"decision": "maybe"})

    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"decision"}


# --- Deciding ------------------------------------------------------------------------------


def test_a_decision_is_recorded_with_its_audit_event(run, reviewer, token_client):
    item = item_of(run, "report0")

    response = token_client(reviewer).post(
        decision_url(item), {"decision": "deny", "justification": "Left the payroll team"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] == "deny" and body["decided_by"] == "reviewer"
    assert body["justification"] == "Left the payroll team"
    item.refresh_from_db()
    assert (item.decision, item.decided_by) == ("deny", reviewer)
    [event] = decisions_recorded()
    assert event.actor == reviewer and event.target_id == str(item.pk)
    assert event.details["decision"] == "deny" and event.details["before"] == ""
    assert event.details["justification"] == "Left the payroll team"


def test_a_decision_can_be_changed_and_the_filters_follow_it(run, reviewer, token_client):
    client = token_client(reviewer)
    item = item_of(run, "report0")
    client.post(decision_url(item), {"decision": "deny", "justification": "Left"})

    changed = client.post(decision_url(item), {"decision": "approve", "justification": "Came back"})

    assert changed.status_code == 200
    assert decisions_recorded()[-1].details["before"] == "deny"
    approved = client.get(ITEMS, {"decision": "approve"}).json()["results"]
    undecided = client.get(ITEMS, {"decision": "undecided"}).json()["results"]
    assert [i["id"] for i in approved] == [str(item.pk)]
    assert [i["principal"] for i in undecided] == ["Report1 <report1>"]
    assert client.get(ITEMS, {"decision": "deny"}).json()["results"] == []


def test_a_missing_justification_is_a_400_naming_the_field(run, reviewer, token_client):
    item = item_of(run, "report0")

    response = token_client(reviewer).post(decision_url(item), {"decision": "approve"})

    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"justification"}
    assert not decisions_recorded()


def test_fields_that_try_to_set_who_decided_are_ignored_or_refused(run, reviewer, token_client):
    item = item_of(run, "report0")
    client = token_client(reviewer)

    echoed = client.post(
        decision_url(item), {"decision": "approve", "justification": "Fine", "decided_by": "outsider"}
    )
    unknown = client.post(decision_url(item), {"decision": "approve", "justification": "ok", "status": "x"})

    assert echoed.status_code == 200 and echoed.json()["decided_by"] == "reviewer"
    assert unknown.status_code == 400 and set(error(unknown)["fields"]) == {"status"}


def test_a_decision_after_the_end_is_a_409_with_the_reason(run, reviewer, token_client, time_machine):
    item = item_of(run, "report0")
    client = token_client(reviewer)
    time_machine.move_to(run.ends_at + timedelta(seconds=1))

    response = client.post(decision_url(item), {"decision": "approve", "justification": "Late"})

    assert response.status_code == 409
    assert error(response) == {"code": "conflict", "message": ENDED, "fields": {}}
    assert client.get(ITEMS).json()["results"] == []  # no longer asked
    item.refresh_from_db()
    assert item.decision == "" and not decisions_recorded()


# --- In bulk -------------------------------------------------------------------------------


def test_bulk_decides_every_item_with_one_event_each(run, reviewer, token_client):
    items = [item_of(run, "report0"), item_of(run, "report1")]

    response = token_client(reviewer).post(
        BULK, {"items": [str(i.pk) for i in items], "decision": "approve", "justification": "Still needed"}
    )

    assert response.status_code == 200, response.content
    assert {i["id"] for i in response.json()["items"]} == {str(i.pk) for i in items}
    assert set(
        ReviewItem.objects.filter(pk__in=[i.pk for i in items]).values_list("decision", flat=True)
    ) == {"approve"}
    assert sorted(event.target_id for event in decisions_recorded()) == sorted(str(i.pk) for i in items)


def test_bulk_with_one_item_not_mine_is_a_404_and_changes_nothing(run, reviewer, token_client):
    ids = [str(item_of(run, name).pk) for name in ("report0", "report1", "theirs0")]

    response = token_client(reviewer).post(
        BULK, {"items": ids, "decision": "deny", "justification": "Clean-up"}
    )

    assert response.status_code == 404
    assert error(response)["code"] == "not_found"
    assert not run.items.exclude(decision="").exists()
    assert not decisions_recorded()


def test_bulk_after_the_end_is_a_409_and_changes_nothing(run, reviewer, token_client, time_machine):
    ids = [str(item_of(run, name).pk) for name in ("report0", "report1")]
    client = token_client(reviewer)
    time_machine.move_to(run.ends_at)

    response = client.post(BULK, {"items": ids, "decision": "deny", "justification": "Late"})

    assert response.status_code == 409 and error(response)["message"] == ENDED
    assert not run.items.exclude(decision="").exists() and not decisions_recorded()


def test_bulk_needs_at_least_one_item(reviewer, token_client):
    response = token_client(reviewer).post(BULK, {"items": [], "decision": "deny", "justification": "x"})

    assert response.status_code == 400 and set(error(response)["fields"]) == {"items"}


def test_the_list_runs_a_fixed_number_of_queries(run, reviewer, token_client):
    client = token_client(reviewer)
    client.get(ITEMS)  # the token's first use is written once
    with CaptureQueriesContext(connection) as few:
        client.get(ITEMS)
    billing = RoleFactory(name="Billing Reader")
    reports_of(reviewer, billing, 5, prefix="more")
    start(definition_create(roles=[billing], name="Billing"))
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(ITEMS).json()["results"]) == 7

    assert len(many) == len(few)


def test_a_bad_id_in_the_list_is_a_400_with_flat_messages(reviewer, token_client):
    response = token_client(reviewer).post(
        BULK, {"items": [str(uuid.uuid4()), "nope"], "decision": "deny", "justification": "x"}
    )

    assert response.status_code == 400
    assert error(response)["fields"] == {"items": ["1: Must be a valid UUID."]}
