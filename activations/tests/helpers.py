"""Building blocks shared by the activation service, job and concurrency tests.

Plain functions rather than fixtures, so each test reads top to bottom: a role with the
settings it needs, an eligibility, a request made through the real service.
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from activations import services
from activations.models import ActivationRequest
from audit.models import AuditEvent
from roles.models import RoleSettings
from tests.factories import EligibleAssignmentFactory, RoleFactory

# A Monday morning: every test that moves the clock starts here.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def role_with(*, approvers=(), approver_groups=(), name=None, **settings):
    """A custom role whose settings are the defaults changed by `settings`; naming approvers
    turns approval on."""
    role = RoleFactory(**({"name": name} if name else {}))
    if approvers or approver_groups:
        settings.setdefault("require_approval", True)
    RoleSettings.objects.filter(role=role).update(**settings)
    role.settings.refresh_from_db()
    role.settings.approvers.set(approvers)
    role.settings.approver_groups.set(approver_groups)
    return role


def eligible_for(principal, role, **fields):
    """An eligibility of the user (or group) for the role, from yesterday for 90 days."""
    owner = {"group": principal, "user": None} if hasattr(principal, "members") else {"user": principal}
    return EligibleAssignmentFactory(role=role, **owner, **fields)


def request_activation(requester, eligible, *, duration=HOUR, now=None, **kwargs) -> ActivationRequest:
    """Ask through the real service, with a justification and a fresh MFA verification."""
    now = now or timezone.now()
    kwargs.setdefault("justification", "Incident 42")
    kwargs.setdefault("mfa_verified_at", now)
    return services.activation_request(
        requester=requester, eligible=eligible, duration=duration, now=now, **kwargs
    )


def approve(approver, request, *, now=None, reason="Looks right") -> ActivationRequest:
    now = now or timezone.now()
    return services.activation_approve(
        approver=approver, request=request, reason=reason, mfa_verified_at=now, now=now
    )


def deny(approver, request, *, now=None, reason="Not during the freeze") -> ActivationRequest:
    now = now or timezone.now()
    return services.activation_deny(
        approver=approver, request=request, reason=reason, mfa_verified_at=now, now=now
    )


def request_events(request, action=None) -> list[AuditEvent]:
    """The audit events whose target is the request (directory and assignment events target
    the assignment, not the request)."""
    events = AuditEvent.objects.filter(target_type="activations.activationrequest", target_id=str(request.pk))
    return list(events.filter(action=action) if action else events)


def request_actions(request) -> list[str]:
    return [event.action for event in request_events(request)]


def reloaded(request) -> ActivationRequest:
    return ActivationRequest.objects.select_related("active_assignment").get(pk=request.pk)
