"""Activation requests through the API: create, read, list, cancel, deactivate, extend."""

from datetime import timedelta

import pytest
from django.utils import timezone

from activations.models import ActivationRequest
from audit.models import AuditEvent
from roles.models import RoleSettings
from tests.factories import EligibleAssignmentFactory, RoleFactory, totp_code

from .helpers import error, granted_activation, session_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/activation-requests/"


@pytest.fixture
def frozen(time_machine):
    """The clock stands still (codes are reproducible); returns a function moving it on."""
    now = [timezone.now() + timedelta(seconds=1)]
    time_machine.move_to(now[0], tick=False)

    def later(seconds=31):
        now[0] += timedelta(seconds=seconds)
        time_machine.move_to(now[0], tick=False)
        return now[0]

    return later


@pytest.fixture
def body(eligibility, devices, requester):
    def make(**changes):
        data = {
            "eligible": str(eligibility.pk),
            "duration": 3600,
            "justification": "Quarter close",
            "otp_code": totp_code(devices[requester]),
        }
        data.update(changes)
        return {key: value for key, value in data.items() if value is not None}

    return make


# --- Create ----------------------------------------------------------------------------------


def test_a_role_without_approval_is_granted_at_once(requester, token_client, body, frozen):
    response = token_client(requester).post(URL, body(duration="PT30M", ticket_number="CHG-1"))

    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "granted"
    assert created["duration"] == 1800
    assert created["ticket_number"] == "CHG-1"
    assert created["active_assignment"] is not None
    request = ActivationRequest.objects.get(pk=created["id"])
    assert request.mfa_verified_at == timezone.now()  # the code in the body was the step-up
    event = AuditEvent.objects.get(action="activation.granted", target_id=created["id"])
    assert event.actor_id == requester.pk
    assert AuditEvent.objects.filter(action="mfa.verified", actor=requester).count() == 1


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("PT5H", "can be activated for at most 4 hours"),
        (5 * 3600, "can be activated for at most 4 hours"),
        (60, "at least 5 minutes"),
    ],
)
def test_a_duration_outside_the_policy_is_a_400_on_the_duration_field(
    requester, approval_role, token_client, body, frozen, duration, message
):
    response = token_client(requester).post(URL, body(duration=duration))

    assert response.status_code == 400
    problem = error(response)
    assert problem["code"] == "invalid"
    assert list(problem["fields"]) == ["duration"]
    assert message in problem["fields"]["duration"][0]
    assert not ActivationRequest.objects.exists()


@pytest.mark.parametrize(
    "duration",
    ["two hours", "", "PT", "P99999999999D", "PT-1H", -60, 0, True, 10**12, 1.5, None, [], {"hours": 2}],
)
def test_absurd_durations_are_a_400_on_the_duration_field(requester, token_client, body, frozen, duration):
    data = body()
    data["duration"] = duration

    response = token_client(requester).post(URL, data)

    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["duration"]


@pytest.mark.parametrize(
    ("starts_at", "message"),
    [
        ("2000-01-01T00:00:00Z", "A scheduled start cannot be in the past."),
        ("9999-12-31T23:59:00Z", "A start can be scheduled at most 30 days ahead."),
    ],
)
def test_a_scheduled_start_is_judged_by_the_service_on_the_starts_at_field(
    requester, token_client, body, frozen, starts_at, message
):
    response = token_client(requester).post(URL, body(starts_at=starts_at))

    assert response.status_code == 400
    assert error(response)["fields"] == {"starts_at": [message]}
    assert not ActivationRequest.objects.exists()


def test_a_replayed_code_is_refused_with_a_400_on_otp_code(requester, devices, token_client, body, frozen):
    client = token_client(requester)
    code = totp_code(devices[requester])
    assert client.post(URL, body(otp_code=code)).status_code == 201

    other = EligibleAssignmentFactory(user=requester, role=RoleFactory())
    response = client.post(URL, body(eligible=str(other.pk), otp_code=code))

    assert response.status_code == 400
    assert error(response)["fields"] == {"otp_code": ["That code is wrong or has already been used."]}
    assert ActivationRequest.objects.count() == 1


def test_a_role_that_needs_mfa_refuses_a_request_without_a_code(requester, token_client, body, frozen):
    response = token_client(requester).post(URL, body(otp_code=None))

    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["otp_code"]


def test_a_person_without_an_authenticator_is_told_so(outsider, token_client, frozen):
    eligible = EligibleAssignmentFactory(user=outsider)
    data = {"eligible": str(eligible.pk), "duration": 3600, "justification": "x", "otp_code": "123456"}

    response = token_client(outsider).post(URL, data)

    assert error(response)["fields"] == {"otp_code": ["You have no authenticator app set up."]}


def test_a_fresh_portal_step_up_stands_in_for_the_code(requester, body, frozen):
    client = session_client(requester, enforce_csrf=False, stepped_up_at=timezone.now())

    response = client.post(URL, body(otp_code=None), content_type="application/json")

    assert response.status_code == 201, response.json()


def test_service_validation_messages_arrive_per_field(requester, token_client, body, frozen, role):
    RoleSettings.objects.filter(role=role).update(require_ticket=True)

    client = token_client(requester)

    response = client.post(URL, body(justification="  "))
    frozen()
    bad_scope = client.post(URL, body(scope="/not a scope"))

    assert error(response)["fields"] == {
        "justification": ["A justification is required for this role."],
        "ticket_number": ["A ticket number is required for this role."],
    }
    assert "is not a valid scope for this role" in error(bad_scope)["fields"]["scope"][0]


@pytest.mark.parametrize("scope", ["/apps/billing/../payroll", "/apps/billing/./x", "/apps/billing/"])
def test_a_scope_with_dot_or_trailing_segments_is_refused_not_read_as_below_the_eligibility(
    requester, token_client, body, frozen, eligibility, scope
):
    type(eligibility).objects.filter(pk=eligibility.pk).update(scope="/apps/billing")

    response = token_client(requester).post(URL, body(scope=scope))

    assert response.status_code == 400
    assert "not a valid scope" in error(response)["fields"]["scope"][0]
    assert not ActivationRequest.objects.exists()


def test_status_and_requester_in_a_create_body_have_no_effect(
    requester, approver, approval_role, token_client, body, frozen
):
    data = body(status="granted", requester="approver", decided_by="approver", approvers=["requester"])

    response = token_client(requester).post(URL, data)

    assert response.status_code == 201, response.json()
    request = ActivationRequest.objects.get(pk=response.json()["id"])
    assert request.status == "pending_approval"
    assert request.requester == requester
    assert request.decided_by is None
    assert list(request.approvers.values_list("user__username", flat=True)) == ["approver"]


def test_unknown_fields_are_refused_by_name(requester, approval_role, token_client, body, frozen):
    data = body(approver="requester", mfa_verified_at="2020-01-01T00:00:00Z", is_superuser=True)

    response = token_client(requester).post(URL, data)

    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"approver", "mfa_verified_at", "is_superuser"}
    assert not ActivationRequest.objects.exists()


def test_someone_elses_eligibility_is_refused_like_a_missing_one(requester, outsider, token_client, frozen):
    others = EligibleAssignmentFactory(user=outsider)
    client = token_client(requester)

    theirs = client.post(URL, {"eligible": str(others.pk), "duration": 3600})
    missing = client.post(URL, {"eligible": "00000000-0000-4000-8000-000000000000", "duration": 3600})

    assert theirs.status_code == missing.status_code == 400
    assert error(theirs) == error(missing)


def test_a_group_eligibility_can_be_activated(requester, token_client, devices, frozen):
    from tests.factories import DirectoryGroupFactory

    group = DirectoryGroupFactory()
    group.members.add(requester)
    eligible = EligibleAssignmentFactory(user=None, group=group)
    data = {
        "eligible": str(eligible.pk),
        "duration": 600,
        "justification": "On call",
        "otp_code": totp_code(devices[requester]),
    }

    response = token_client(requester).post(URL, data)

    assert response.status_code == 201, response.json()


def test_code_attempts_are_throttled_with_429(requester, token_client, body, frozen, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"activation": "100/hour", "totp": "2/minute"},
    }
    client = token_client(requester)
    for _ in range(2):
        client.post(URL, body(otp_code="000000"))
        frozen(seconds=5)  # past django-otp's own back-off

    response = client.post(URL, body())

    assert response.status_code == 429
    assert error(response)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_a_device_throttled_by_wrong_codes_answers_429(requester, token_client, body, frozen):
    client = token_client(requester)
    client.post(URL, body(otp_code="000000"))  # wrong: django-otp backs off for a second

    response = client.post(URL, body())

    assert response.status_code == 429
    assert "Too many wrong codes" in error(response)["message"]


def test_activation_requests_are_throttled_with_429(requester, token_client, body, frozen, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"activation": "1/hour", "totp": "100/minute"},
    }
    client = token_client(requester)
    client.post(URL, body(duration=-1))

    response = client.post(URL, body())

    assert response.status_code == 429
    assert client.get(URL).status_code == 200  # reading is not throttled


def test_an_unreachable_throttle_cache_lets_requests_through(
    requester, token_client, body, frozen, settings, caplog
):
    settings.CACHES = {
        **settings.CACHES,
        "api_throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }

    response = token_client(requester).post(URL, body())

    assert response.status_code == 201, response.json()
    assert "API throttle cache unavailable" in caplog.text


# --- Read ------------------------------------------------------------------------------------


def test_my_list_shows_only_my_requests_newest_first_a_page_at_a_time(
    requester, outsider, role, token_client, django_assert_max_num_queries
):
    for hours in (1, 2, 3):
        granted_activation(requester, EligibleAssignmentFactory(user=requester), hours=hours)
    granted_activation(outsider, EligibleAssignmentFactory(user=outsider))
    client = token_client(requester)

    with django_assert_max_num_queries(8):
        first = client.get(URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    durations = [item["duration"] for item in first["results"] + second["results"]]
    assert durations == [3 * 3600, 2 * 3600, 3600]
    assert second["next"] is None


def test_my_list_filters_by_status_and_refuses_an_unknown_one(requester, token_client, eligibility):
    granted_activation(requester, eligibility)
    client = token_client(requester)

    assert len(client.get(URL, {"status": "granted"}).json()["results"]) == 1
    assert client.get(URL, {"status": "denied"}).json()["results"] == []
    assert list(error(client.get(URL, {"status": "approved!"}))["fields"]) == ["status"]


def test_a_request_is_visible_to_its_requester_approvers_admins_and_auditors_only(
    requester, approver, admin, auditor, outsider, approval_role, eligibility, token_client
):
    from activations.services import activation_request

    request = activation_request(
        requester=requester,
        eligible=eligibility,
        duration=timedelta(hours=1),
        justification="Needed",
        mfa_verified_at=timezone.now(),
    )
    url = f"{URL}{request.pk}/"

    for person in (requester, approver, admin, auditor):
        assert token_client(person).get(url).status_code == 200, person
    response = token_client(outsider).get(url)
    assert response.status_code == 404
    assert error(response) == {"code": "not_found", "message": "Not found.", "fields": {}}


def test_a_malformed_or_unknown_id_is_a_404_in_the_error_shape(requester, token_client):
    client = token_client(requester)

    malformed = (f"{URL}not-a-uuid/", f"{URL}%0A/", "/api/v1/me/eligibilities/%0A/extend/")
    for url in (*malformed, f"{URL}00000000-0000-4000-8000-000000000000/", "/api/v1/nothing/"):
        response = client.get(url)
        assert response.status_code == 404
        assert error(response)["code"] == "not_found"


# --- Cancel, deactivate ----------------------------------------------------------------------


@pytest.fixture
def pending(requester, approval_role, eligibility):
    from activations.services import activation_request

    return activation_request(
        requester=requester,
        eligible=eligibility,
        duration=timedelta(hours=1),
        justification="Needed",
        mfa_verified_at=timezone.now(),
    )


def test_the_requester_cancels_a_pending_request_once(requester, pending, token_client):
    client = token_client(requester)

    response = client.post(f"{URL}{pending.pk}/cancel/")
    again = client.post(f"{URL}{pending.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert again.status_code == 409
    assert error(again) == {
        "code": "conflict",
        "message": "This request is canceled; it cannot become canceled.",
        "fields": {},
    }


def test_cancelling_a_granted_activation_is_an_illegal_transition_409(requester, eligibility, token_client):
    granted = granted_activation(requester, eligibility)

    response = token_client(requester).post(f"{URL}{granted.pk}/cancel/")

    assert response.status_code == 409
    assert error(response)["message"] == "This request is granted; it cannot become canceled."


def test_an_approver_may_see_but_not_cancel_and_an_outsider_may_not_even_see(
    approver, outsider, pending, token_client
):
    assert token_client(approver).post(f"{URL}{pending.pk}/cancel/").status_code == 403
    assert token_client(outsider).post(f"{URL}{pending.pk}/cancel/").status_code == 404
    assert ActivationRequest.objects.get(pk=pending.pk).status == "pending_approval"


def test_the_requester_deactivates_a_granted_activation_then_it_is_409(requester, eligibility, token_client):
    granted = granted_activation(requester, eligibility)
    client = token_client(requester)

    response = client.post(f"{URL}{granted.pk}/deactivate/")
    again = client.post(f"{URL}{granted.pk}/deactivate/")

    assert response.status_code == 200
    assert response.json()["status"] == "deactivated"
    assert again.status_code == 409
    assert client.get("/api/v1/me/active-assignments/").json() == []


def test_deactivating_after_the_end_is_409(requester, eligibility, token_client, time_machine):
    granted = granted_activation(requester, eligibility, hours=1)
    time_machine.move_to(granted.ends_at, tick=False)

    response = token_client(requester).post(f"{URL}{granted.pk}/deactivate/")

    assert response.status_code == 409
    assert error(response)["message"] == "This activation has already ended."


def test_nobody_else_deactivates_my_activation(admin, outsider, requester, eligibility, token_client):
    granted = granted_activation(requester, eligibility)

    assert token_client(admin).post(f"{URL}{granted.pk}/deactivate/").status_code == 403
    assert token_client(outsider).post(f"{URL}{granted.pk}/deactivate/").status_code == 404


# --- Extension and renewal -------------------------------------------------------------------


def test_an_eligibility_ending_soon_can_be_extended_through_approval(
    requester, approver, role, token_client, admin
):
    ending = EligibleAssignmentFactory(user=requester, role=role, ends_at=timezone.now() + timedelta(days=5))

    response = token_client(requester).post(
        f"/api/v1/me/eligibilities/{ending.pk}/extend/",
        {"duration": "P30D", "justification": "Project runs on"},
    )

    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == "extend"
    assert response.json()["status"] == "pending_approval"
    assert "pimadmin" in response.json()["approvers"]  # nobody named: PIM Administrators decide


def test_an_eligibility_far_from_its_end_cannot_be_extended(requester, eligibility, token_client):
    response = token_client(requester).post(
        f"/api/v1/me/eligibilities/{eligibility.pk}/extend/", {"duration": "P30D", "justification": "More"}
    )

    assert response.status_code == 400
    assert "within the next 14 days" in error(response)["message"]


def test_someone_elses_eligibility_cannot_be_extended(requester, outsider, token_client):
    theirs = EligibleAssignmentFactory(user=outsider, ends_at=timezone.now() + timedelta(days=5))

    response = token_client(requester).post(
        f"/api/v1/me/eligibilities/{theirs.pk}/extend/", {"duration": "P30D", "justification": "Mine now"}
    )

    assert response.status_code == 404
