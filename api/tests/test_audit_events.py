"""The audit log through the API: auditors only, filtered, keyset-paged on seq."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from tests.factories import RoleFactory, totp_device

from .helpers import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events/"


@pytest.fixture
def events(requester, approver):
    role = RoleFactory(name="Payroll Administrator")
    start = timezone.now() - timedelta(hours=1)
    recorded = [
        audit_record(action="activation.requested", actor=requester, role=role, at=start),
        audit_record(
            action="activation.approved", actor=approver, role=role, at=start + timedelta(minutes=1)
        ),
        audit_record(action="role.changed", actor=approver, at=start + timedelta(minutes=2)),
        audit_record(
            action="activation.denied", actor=approver, target=requester, at=start + timedelta(minutes=3)
        ),
    ]
    return {"role": role, "start": start, "events": recorded}


def seqs(response) -> list[int]:
    return [item["seq"] for item in response.json()["results"]]


def test_people_without_the_auditor_role_get_403(requester, outsider, token_client):
    for person in (requester, outsider):
        response = token_client(person).get(URL)
        assert response.status_code == 403
        assert error(response)["code"] == "permission_denied"


def test_auditors_and_admins_read_the_log_oldest_first(auditor, admin, events, token_client):
    for person in (auditor, admin):
        response = token_client(person).get(URL)
        assert response.status_code == 200
        assert seqs(response) == sorted(AuditEvent.objects.values_list("seq", flat=True))


def test_pages_follow_the_sequence_without_offset(auditor, events, token_client):
    client = token_client(auditor)
    client.get(URL)
    everything = sorted(AuditEvent.objects.values_list("seq", flat=True))

    walked, url = [], f"{URL}?page_size=2"
    with CaptureQueriesContext(connection) as queries:
        while url:
            page = client.get(url).json()
            walked += [item["seq"] for item in page["results"]]
            url = page["next"]

    assert walked == everything
    assert not [query["sql"] for query in queries if "OFFSET" in query["sql"].upper()]


@pytest.mark.parametrize(
    ("query", "actions"),
    [
        ({"action": "activation.approved"}, ["activation.approved"]),
        ({"action": "activation.*"}, ["activation.requested", "activation.approved", "activation.denied"]),
        ({"actor": "approver", "action": "activation.*"}, ["activation.approved", "activation.denied"]),
        ({"actor": "nobody"}, []),
    ],
)
def test_filters_by_action_and_actor(auditor, events, token_client, query, actions):
    response = token_client(auditor).get(URL, query)

    assert [item["action"] for item in response.json()["results"]] == actions


def test_filters_by_role_time_range_and_target(auditor, requester, events, token_client):
    client = token_client(auditor)
    start = events["start"]

    by_role = client.get(URL, {"role": str(events["role"].pk)}).json()["results"]
    in_range = client.get(
        URL,
        {
            "since": (start + timedelta(minutes=1)).isoformat(),
            "until": (start + timedelta(minutes=3)).isoformat(),
        },
    ).json()["results"]
    by_target = client.get(URL, {"target": str(requester.pk)}).json()["results"]

    assert [item["action"] for item in by_role] == ["activation.requested", "activation.approved"]
    assert [item["action"] for item in in_range] == ["activation.approved", "role.changed"]
    assert [item["action"] for item in by_target] == ["activation.denied"]


def test_filters_by_http_request_id(auditor, requester, eligibility, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    totp_device(requester)
    client = token_client(requester)
    wrong_code = {"eligible": str(eligibility.pk), "duration": 600, "otp_code": "000000"}
    first = client.post("/api/v1/activation-requests/", wrong_code)["X-Request-ID"]
    time_machine.shift(timedelta(seconds=5))  # past django-otp's back-off
    client.post("/api/v1/activation-requests/", wrong_code)

    response = token_client(auditor).get(URL, {"request_id": first})

    assert [item["action"] for item in response.json()["results"]] == ["mfa.failed"]
    assert response.json()["results"][0]["request_id"] == first


@pytest.mark.parametrize(
    "query",
    [{"since": "yesterday"}, {"role": "not-a-uuid"}, {"page_size": "x", "until": "2026-13-01"}],
)
def test_bad_filters_are_a_400_naming_the_field(auditor, token_client, query):
    response = token_client(auditor).get(URL, query)

    assert response.status_code == 400
    assert set(error(response)["fields"]) <= {"since", "until", "role"}
    assert error(response)["fields"]


def test_an_event_carries_its_chain_fields(auditor, events, token_client):
    item = token_client(auditor).get(URL, {"action": "role.changed"}).json()["results"][0]
    event = AuditEvent.objects.get(seq=item["seq"])

    assert item["hash"] == event.hash and item["prev_hash"] == event.prev_hash
    assert item["actor_label"] == "Arne Approver <approver>"


# --- The explorer's filters (audit.filters), read as a query ---------------------------------


def test_the_explorer_filters_work_here_too(auditor, requester, approver, events, token_client):
    client = token_client(auditor)
    audit_record(action="role.denied", actor=approver, outcome="denied", scope="/subscriptions/abc/rg1")
    audit_record(action="job.ran")

    def actions(**query):
        return [item["action"] for item in client.get(URL, query).json()["results"]]

    assert actions(principal="requester") == ["activation.denied"]
    assert actions(outcome="denied") == ["role.denied"]
    assert actions(scope="/subscriptions/abc*") == ["role.denied"]
    assert actions(action="activation.") == [
        "activation.requested",
        "activation.approved",
        "activation.denied",
    ]
    assert "job.ran" in actions(actor="system")


def test_a_query_about_nobody_or_an_empty_range_finds_nothing(auditor, events, token_client):
    client = token_client(auditor)
    start = events["start"]

    for query in (
        {"actor": "nobody"},
        {"principal": "nobody"},
        {"role": "00000000-0000-0000-0000-000000000000"},
        {"since": (start + timedelta(minutes=3)).isoformat(), "until": start.isoformat()},
    ):
        response = client.get(URL, query)
        assert response.status_code == 200, query
        assert response.json()["results"] == [], query


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": ""}, "since"),
        ({"until": " "}, "until"),
        ({"role": ""}, "role"),
        ({"role": "Payroll Administrator"}, "role"),  # the API takes a role's id
        ({"outcome": "exploded"}, "outcome"),
        ({"action": "x" * 65}, "action"),
    ],
)
def test_blank_typed_values_and_names_for_ids_are_a_400(auditor, events, token_client, query, field):
    response = token_client(auditor).get(URL, query)

    assert response.status_code == 400
    assert set(error(response)["fields"]) == {field}
