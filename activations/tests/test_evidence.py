"""An activation's evidence, at /audit/activations/<pk>/ with the audit log: for audit readers
only; and the explorer's events about a request link to it."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from activations.services import activation_request
from audit.models import AuditEvent
from audit.services import audit_record
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, portal_role

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["outsider", "requester", "lapsed_auditor"])
def non_reader(request):
    if request.param == "lapsed_auditor":
        # Eligible for PIM Auditor, but the role is not active right now.
        user = UserFactory(username="lapsed")
        EligibleAssignmentFactory(user=user, role=portal_role("pim.auditor"))
        return user
    return request.getfixturevalue(request.param)


def test_non_readers_get_404(verified_client, non_reader, activation_story):
    url = reverse("evidence:activation", args=[activation_story.pk])

    assert verified_client(non_reader).get(url).status_code == 404


def test_the_evidence_page_keeps_its_address_with_the_audit_log(activation_story):
    assert (
        reverse("evidence:activation", args=[activation_story.pk])
        == f"/audit/activations/{activation_story.pk}/"
    )


def test_the_evidence_of_an_activation_tells_its_whole_story(verified_client, auditor, activation_story):
    request = activation_story
    url = reverse("evidence:activation", args=[request.pk])

    response = verified_client(auditor).get(url)

    assert response.status_code == 200
    titles = [step.title for step in response.context["evidence"].steps]
    assert titles == [
        "Requested",
        "Approved",
        "Granted: active",
        "Deactivated",
        "Directory: grant confirmed",
        "Directory: revoke confirmed",
    ]
    steps = {step.title: step for step in response.context["evidence"].steps}
    assert steps["Approved"].by == "Arne Approver <approver>"
    assert dict(steps["Approved"].notes)["MFA verified at"] is not None
    assert steps["Deactivated"].by == "Rita Requester <requester>"
    assert all(step.event is not None for step in steps.values())
    content = response.content.decode()
    assert "Fix &lt;b&gt;prod&lt;/b&gt; incident" in content and "<b>prod</b>" not in content
    assert "ServiceNow INC-42" in content
    assert dict(steps["Requested"].notes)["Duration"] == "1 h"


def test_the_evidence_of_a_pending_request_says_what_is_missing(
    verified_client, auditor, requester, approver
):
    role = RoleFactory(role_settings__require_approval=True)
    role.settings.approvers.add(approver)
    request = activation_request(
        requester=requester,
        eligible=EligibleAssignmentFactory(user=requester, role=role),
        duration=timedelta(hours=1),
        justification="Because",
        mfa_verified_at=timezone.now(),
    )

    response = verified_client(auditor).get(reverse("evidence:activation", args=[request.pk]))

    steps = response.context["evidence"].steps
    assert [(step.title, step.state) for step in steps] == [
        ("Requested", "done"),
        ("Waiting for approval", "pending"),
    ]


def test_the_evidence_page_runs_a_fixed_number_of_queries(verified_client, auditor, activation_story):
    client = verified_client(auditor)
    url = reverse("evidence:activation", args=[activation_story.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as before:
        client.get(url)
    for _ in range(10):
        audit_record(action="activation.noted", target=activation_story)

    with CaptureQueriesContext(connection) as after:
        client.get(url)

    assert len(before.captured_queries) == len(after.captured_queries)


def test_an_unknown_activation_is_404(verified_client, auditor):
    url = reverse("evidence:activation", args=["00000000-0000-0000-0000-000000000000"])

    assert verified_client(auditor).get(url).status_code == 404


def test_events_about_an_activation_link_to_its_evidence(verified_client, auditor, activation_story):
    url = reverse("evidence:activation", args=[activation_story.pk])
    event = AuditEvent.objects.filter(action="activation.approved").get()
    client = verified_client(auditor)

    assert url.encode() in client.get(reverse("audit:event_list"), {"action": "activation."}).content
    assert url.encode() in client.get(reverse("audit:event_detail", args=[event.seq])).content
