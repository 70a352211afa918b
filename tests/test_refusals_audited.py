"""Every administrative service that refuses someone for want of a permission leaves an
admin.permission_denied event naming the action attempted (README "Refusals are audited"),
and the refusal over HTTP leaves the same record."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import group_create, user_create, user_deactivate
from activations.services import activation_request
from alerts.models import Alert
from alerts.services import alert_dismiss, alerts_evaluate
from api.services import api_token_create, api_token_revoke
from audit.models import AuditEvent
from entra.services import entra_connection_test
from reviews.services import review_definition_create
from roles.services import active_assign, eligible_assign, eligible_remove, role_create, role_settings_update
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def token_client_for():
    def make(user):
        _, secret = api_token_create(actor=None, user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


def an_alert() -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        kind="roles_without_mfa", severity="medium", items=[], first_raised_at=now, last_evaluated_at=now
    )


def someone_elses_token():
    token, _ = api_token_create(actor=None, user=UserFactory(), name="theirs")
    return token


ATTEMPTS = {
    "role_create": lambda actor: role_create(actor=actor, name="Shadow Admin"),
    "role_settings_update": lambda actor: role_settings_update(
        actor=actor, role=RoleFactory(), changes={"require_mfa": False}
    ),
    "eligible_assign": lambda actor: eligible_assign(actor=actor, role=RoleFactory(), principal=actor),
    "eligible_remove": lambda actor: eligible_remove(actor=actor, assignment=EligibleAssignmentFactory()),
    "active_assign": lambda actor: active_assign(actor=actor, role=RoleFactory(), principal=actor),
    "user_create": lambda actor: user_create(actor=actor, username="mallory2"),
    "user_deactivate": lambda actor: user_deactivate(actor=actor, user=UserFactory(), reason="x"),
    "group_create": lambda actor: group_create(actor=actor, name="Admins 2"),
    "api_token_create": lambda actor: api_token_create(actor=actor, user=UserFactory(), name="theirs"),
    "api_token_revoke": lambda actor: api_token_revoke(actor=actor, token=someone_elses_token()),
    "alerts_evaluate": lambda actor: alerts_evaluate(actor=actor),
    "alert_dismiss": lambda actor: alert_dismiss(actor=actor, alert=an_alert(), reason="x"),
    "review_definition_create": lambda actor: review_definition_create(actor=actor, roles=[], name="x"),
    "entra_connection_test": lambda actor: entra_connection_test(actor=actor),
}


@pytest.mark.parametrize("attempted", ATTEMPTS)
def test_an_administrative_action_refused_for_want_of_permission_is_audited(attempted, outsider):
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    with pytest.raises(PermissionDenied):
        ATTEMPTS[attempted](outsider)

    [event] = AuditEvent.objects.filter(seq__gt=before, actor_id=outsider.pk)
    assert (event.action, event.outcome, event.details["attempted"]) == (
        "admin.permission_denied",
        "denied",
        attempted,
    )
    assert event.details["message"]


def test_an_auditor_dismissing_an_alert_over_the_api_leaves_a_record(auditor, token_client_for):
    alert = an_alert()

    response = token_client_for(auditor).post(f"/api/v1/alerts/{alert.pk}/dismiss/", {"reason": "Fine"})

    assert response.status_code == 403
    [event] = AuditEvent.objects.filter(action="admin.permission_denied")
    assert (event.actor_id, event.details["attempted"], event.target_id) == (
        auditor.pk,
        "alert_dismiss",
        str(alert.pk),
    )
    assert event.request_id == response["X-Request-ID"]


def test_a_requester_revoking_their_own_activation_in_the_portal_leaves_a_record(requester, verified_client):
    role = RoleFactory(name="Vault")
    activation = activation_request(
        requester=requester,
        eligible=EligibleAssignmentFactory(user=requester, role=role),
        duration=timedelta(hours=1),
        justification="Incident",
        mfa_verified_at=timezone.now(),
    )
    client = verified_client(requester)

    response = client.post(
        reverse("activations:revoke", args=[activation.pk]), {"reason": "try"}, follow=True
    )

    assert response.status_code == 200
    [event] = AuditEvent.objects.filter(action="admin.permission_denied")
    assert (event.actor_id, event.details["attempted"], event.role_label) == (
        requester.pk,
        "activation_revoke",
        "Vault",
    )


def test_a_flood_of_refusals_over_http_is_rate_limited(auditor, token_client_for, settings):
    settings.PIM_AUDIT_REFUSALS_PER_MINUTE = 2
    alert = an_alert()
    client = token_client_for(auditor)

    for _ in range(6):
        assert client.post(f"/api/v1/alerts/{alert.pk}/dismiss/", {"reason": "x"}).status_code == 403

    actions = list(AuditEvent.objects.filter(actor_id=auditor.pk).values_list("action", flat=True))
    assert actions == ["admin.permission_denied"] * 2 + ["audit.refusals_suppressed"]
