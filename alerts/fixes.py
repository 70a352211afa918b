"""One-click fixes for alerts: each calls the audited roles services (which check the actor's
rights and the role's policy), so every fix leaves the same audit trail as doing it by hand."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from common.db import retry_on_deadlock
from roles import services as roles
from roles.models import ActiveAssignment, EligibleAssignment, PendingChange, Role, RoleSettings

FIX_REASON = "Fix for the alert “{title}”"


def _role(item_id: str) -> Role:
    role = Role.objects.select_related("settings").filter(pk=item_id).first()
    if role is None:
        raise ValidationError("That role no longer exists.")
    return role


def require_mfa(*, actor: User, item_id: str, now: datetime) -> str:
    role = _role(item_id)
    roles.role_settings_update(actor=actor, role=role, changes={"require_mfa": True})
    return f"{role.name} now requires MFA on activation."


def require_approval(*, actor: User, item_id: str, now: datetime) -> str:
    role = _role(item_id)
    roles.role_settings_update(actor=actor, role=role, changes={"require_approval": True})
    return f"Activations of {role.name} now need approval."


def shorten_duration(*, actor: User, item_id: str, now: datetime) -> str:
    role = _role(item_id)
    limit = timedelta(hours=settings.PIM_ALERT_MAX_ACTIVATION_HOURS)
    roles.role_settings_update(actor=actor, role=role, changes={"activation_max_duration": limit})
    return f"Activations of {role.name} now last at most {settings.PIM_ALERT_MAX_ACTIVATION_HOURS} hours."


@retry_on_deadlock
def convert_to_eligible(*, actor: User, item_id: str, now: datetime) -> str:
    """Make the principal eligible (permanently if the role allows it, else for the longest
    time it allows) and end the permanent active assignment, in one transaction."""
    assignment = (
        ActiveAssignment.objects.select_related("role__settings", "user", "group").filter(pk=item_id).first()
    )
    if assignment is None:
        raise ValidationError("That assignment no longer exists.")
    policy = assignment.role.settings
    ends_at = None if policy.eligible_allow_permanent else now + policy.eligible_max_duration
    principal = assignment.principal
    field = "user" if assignment.user_id else "group"
    with transaction.atomic():
        # The lock order (roles.services): the role's settings, then the assignment, before
        # the eligibility's audit event; the services below find them locked already.
        list(RoleSettings.objects.select_for_update().filter(role_id=assignment.role_id).values_list("pk"))
        list(ActiveAssignment.objects.select_for_update().filter(pk=assignment.pk).values_list("pk"))
        already = (
            EligibleAssignment.objects.filter(
                **{field: principal}, role=assignment.role, scope=assignment.scope, ended_at__isnull=True
            )
            .current(now)
            .exists()
        )
        if not already:
            eligible = roles.eligible_assign(
                actor=actor,
                role=assignment.role,
                principal=principal,
                scope=assignment.scope,
                ends_at=ends_at,
                justification="Converted from a permanent active assignment (alert fix).",
                now=now,
            )
            if isinstance(eligible, PendingChange):
                # The two-person rule: one's own eligibility waits for a second PIM Administrator;
                # the permanent assignment stays until then (run the fix again after approval).
                return (
                    f"The eligibility of {principal.label} for {assignment.role.name} waits for a second "
                    "PIM Administrator's approval; the permanent assignment stays until then."
                )
        roles.active_remove(
            actor=actor,
            assignment=assignment,
            reason="Converted to an eligible assignment (alert fix).",
            end_reason=ActiveAssignment.EndReason.REMOVED,
            now=now,
        )
    return f"{principal.label} is now eligible for {assignment.role.name} instead of holding it permanently."


def remove_unused(*, actor: User, item_id: str, now: datetime) -> str:
    """End the unused eligibility, or the unused standing active assignment, the item names."""
    eligible = EligibleAssignment.objects.select_related("role", "user", "group").filter(pk=item_id).first()
    if eligible is not None:
        roles.eligible_remove(actor=actor, assignment=eligible, reason="Not used (alert fix).", now=now)
        return f"{eligible.principal.label} is no longer eligible for {eligible.role.name}."
    active = (
        ActiveAssignment.objects.select_related("role", "user", "group")
        .filter(pk=item_id, origin=ActiveAssignment.Origin.DIRECT)
        .first()
    )
    if active is None:
        raise ValidationError("That assignment no longer exists.")
    roles.active_remove(
        actor=actor,
        assignment=active,
        reason="Not used (alert fix).",
        end_reason=ActiveAssignment.EndReason.REMOVED,
        now=now,
    )
    return f"{active.principal.label} no longer holds {active.role.name}."


FIXES = {
    "roles_without_mfa": require_mfa,
    "critical_roles_without_approval": require_approval,
    "long_activation_duration": shorten_duration,
    "permanent_active_assignments": convert_to_eligible,
    "unused_eligibilities": remove_unused,
}
