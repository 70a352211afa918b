"""The journey a new user would try: activate with a token, approve with another person's
token, check with a service token, and watch the access end at the exact second."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from activations.models import ActivationRequest
from audit.models import AuditEvent
from tests.factories import totp_code

pytestmark = pytest.mark.django_db


def test_token_journey_from_activation_to_the_exact_end(
    requester, approver, checker, approval_role, eligibility, devices, token_client, time_machine
):
    start = (timezone.now() + timedelta(seconds=1)).replace(microsecond=0)
    time_machine.move_to(start, tick=False)
    as_requester, as_approver, as_checker = (
        token_client(requester),
        token_client(approver),
        token_client(checker),
    )
    check_url = f"/api/v1/check/?user=requester&role={approval_role.pk}&scope=/"

    created = as_requester.post(
        "/api/v1/activation-requests/",
        {
            "eligible": str(eligibility.pk),
            "duration": "PT2H",
            "justification": "Payroll run INC-42",
            "otp_code": totp_code(devices[requester]),
        },
    )
    assert created.status_code == 201, created.json()
    request_id = created.json()["id"]
    assert created.json()["status"] == "pending_approval"
    assert created.json()["approvers"] == ["approver"]
    assert as_checker.get(check_url).json() == {"active": False, "until": None, "assignment": None}

    pending = as_approver.get("/api/v1/approvals/").json()["results"]
    assert [item["id"] for item in pending] == [request_id]

    time_machine.move_to(start + timedelta(minutes=1), tick=False)
    decided = as_approver.post(
        f"/api/v1/approvals/{request_id}/decision/",
        {"decision": "approve", "reason": "Expected", "otp_code": totp_code(devices[approver])},
    )
    assert decided.status_code == 200, decided.json()
    assert decided.json()["status"] == "granted"
    ends_at = start + timedelta(minutes=1, hours=2)
    assert parse_datetime(decided.json()["ends_at"]) == ends_at

    answer = as_checker.get(check_url).json()
    assert answer["active"] is True
    assert parse_datetime(answer["until"]) == ends_at
    assert answer["assignment"] == decided.json()["active_assignment"]
    by_template = as_checker.get("/api/v1/check/?user=requester&role=payroll.admin").json()
    assert by_template == answer

    time_machine.move_to(ends_at - timedelta(microseconds=1), tick=False)
    assert as_checker.get(check_url).json()["active"] is True
    time_machine.move_to(ends_at, tick=False)  # no expiry job has run
    assert as_checker.get(check_url).json() == {"active": False, "until": None, "assignment": None}
    assert ActivationRequest.objects.get(pk=request_id).status == "granted"  # the job's to close
    actions = set(AuditEvent.objects.filter(target_id=request_id).values_list("action", flat=True))
    assert actions == {"activation.requested", "activation.approved"}
