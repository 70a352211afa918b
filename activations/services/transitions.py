"""What every transition shares: the state change, its audit event and emails, granting
the access, whose eligibility applies, and who may act."""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import DirectoryGroup, User
from audit.services import audit_record
from common.step_up import Factor, passkeys_enrolled, verification_is_fresh
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment, RoleSettings
from roles.notification_matrix import Notice, role_notify
from roles.selectors import pim_administrators
from roles.services import (
    active_assignment_create_for_activation,
    role_approver_candidates,
)

from ..models import ActivationRequest, RequestApprover, TransitionNotAllowed
from ..tokens import approval_link

Status = ActivationRequest.Status

Kind = ActivationRequest.Kind


class ActivationError(ValidationError):
    """A request refused for a reason the person can act on (shown as is)."""


class ActivationConflict(ActivationError):
    """Refused because of the live state, not the input: there is already an open activation,
    or the activation has already ended (often a race lost to another transaction). The API
    answers 409, like TransitionNotAllowed."""


def _lock_person(user_id: Any) -> bool:
    """Lock a person's row, the top of the lock order, and say whether the account is active:
    a request for them waits for a deactivation of the account in progress, then sees it.
    FOR NO KEY UPDATE, as accounts locks people: the share locks that audit events and
    assignments take on a person (foreign keys) never wait for it."""
    active = User.objects.select_for_update(no_key=True).filter(pk=user_id, is_active=True)
    return bool(list(active.values_list("pk")))


def _lock_basis(request_pk: uuid.UUID) -> None:
    """Lock what a request rests on, before the request itself (the lock order): the
    requester, then the role's settings and the eligibility. A decision needs them all: it
    re-checks them, and approving an extension or renewal changes the eligibility under the
    role's settings."""
    requester_id, role_id, eligible_id, active_target_id = ActivationRequest.objects.values_list(
        "requester_id", "role_id", "eligible_id", "active_target_id"
    ).get(pk=request_pk)
    _lock_person(requester_id)
    list(RoleSettings.objects.select_for_update().filter(role_id=role_id).values_list("pk"))
    if eligible_id is not None:
        list(EligibleAssignment.objects.select_for_update().filter(pk=eligible_id).values_list("pk"))
    else:  # an extension or renewal of a direct active assignment (activations_request_one_target)
        list(ActiveAssignment.objects.select_for_update().filter(pk=active_target_id).values_list("pk"))


def _eligibility_applies(eligible: EligibleAssignment, user: User, now: datetime) -> bool:
    # A recorded removal is final even if `now` was read just before it committed (a decision
    # racing eligible_remove): the locked row is the live state.
    if eligible.ended_at is not None or not eligible.is_current(now):
        return False
    if eligible.user_id is not None:
        return eligible.user_id == user.pk
    group = cast(DirectoryGroup, eligible.group)  # roles_eligibleassignment_one_principal
    return group.members.filter(pk=user.pk).exists()


def _freeze_approvers(request: ActivationRequest, role_settings: RoleSettings) -> None:
    """Resolve the approvers now and keep them with the request; never the requester."""
    candidates = {user for user in role_approver_candidates(role_settings) if user.pk != request.requester_id}
    if len(candidates) < request.approvals_required:
        raise ActivationError(
            f"{role_settings.role} needs {request.approvals_required} approval(s), but nobody other than you "
            "can approve it. Ask an administrator to name approvers for this role."
        )
    RequestApprover.objects.bulk_create([RequestApprover(request=request, user=user) for user in candidates])


def _grant(request: ActivationRequest, now: datetime, eligible: EligibleAssignment | None = None) -> None:
    """Create the active assignment; the clock starts now (or at the scheduled start)."""
    eligible = cast(EligibleAssignment, eligible or request.eligible)  # an activation has one
    starts_at = max(request.starts_at or now, now)
    ends_at = starts_at + request.duration
    if eligible.ends_at is not None and ends_at > eligible.ends_at:
        ends_at = eligible.ends_at  # never beyond the eligibility
        if ends_at - starts_at < settings.PIM_MIN_ASSIGNMENT_DURATION:
            raise ActivationError("The eligibility ends too soon for this activation.")
    request.active_assignment = active_assignment_create_for_activation(
        eligible=eligible,
        user=request.requester,
        scope=request.scope,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=request.justification,
        ticket_number=request.ticket_number,
        ticket_system=request.ticket_system,
        now=now,
    )
    request.granted_at = now
    request.ends_at = ends_at
    _transition(request, Status.GRANTED, now)


def _transition(request: ActivationRequest, target: str, now: datetime) -> None:
    if not request.can_become(target):
        raise TransitionNotAllowed(request, Status(target))
    request.status = target
    if target in ActivationRequest.TERMINAL or (target == Status.GRANTED and request.kind != Kind.ACTIVATE):
        request.closed_at = now
    request.save()


def request_approvers(request: ActivationRequest) -> list[User]:
    return list(User.objects.filter(pk__in=request.approvers.values("user_id")))


def _prefix(request: ActivationRequest) -> str:
    return "activation" if request.kind == Kind.ACTIVATE else request.kind


def _audit(
    request: ActivationRequest,
    action: str,
    actor: User | None,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        target=request,
        role=request.role,
        scope=request.scope,
        details={
            "requester": request.requester.label,
            "status": request.status,
            "duration_seconds": int(request.duration.total_seconds()),
            "justification": request.justification,
            "ticket": f"{request.ticket_system} {request.ticket_number}".strip(),
            **({"starts_at": request.granted_at, "ends_at": request.ends_at} if request.ends_at else {}),
            **(details or {}),
        },
        at=now,
    )


def _notify(
    request: ActivationRequest,
    template: str,
    recipients: Iterable[User],
    now: datetime,
    *,
    with_links: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    if with_links:
        for approver in recipients:
            email_queue(
                recipients=[approver],
                template=template,
                now=now,
                context={"request": request, "link": approval_link(request, approver), **(extra or {})},
            )
        return
    email_queue(
        recipients=recipients, template=template, now=now, context={"request": request, **(extra or {})}
    )


def _matrix_event(request: ActivationRequest) -> str:
    """Activations follow the activation rules (15-17); an extension or renewal of an
    eligibility the eligible-assignment approver rule (11, "request to approve a role
    assignment renewal/extension"), and of a direct active assignment the active-assignment
    one (14)."""
    if request.kind == Kind.ACTIVATE:
        return "activation"
    return "active" if request.active_target_id is not None else "eligible"


def _role_settings_of(request: ActivationRequest) -> RoleSettings:
    return RoleSettings.objects.select_related("role").get(role_id=request.role_id)


def _notify_approval_request(
    request: ActivationRequest, approvers: Iterable[User], now: datetime, *, additional: bool = True
) -> None:
    """Approvers get the request with their own link (the approver rule: critical, it asks them
    to act); the rule's additional recipients get the request page. additional=False when
    approvers join a request already announced."""
    base = f"{settings.PIM_BASE_URL}{request.get_absolute_url()}"

    def context_for(recipient: Any) -> dict[str, Any]:
        return {"link": approval_link(request, recipient) if isinstance(recipient, User) else base}

    notice = Notice("approver", "approval-request", list(approvers), {"request": request}, True, context_for)
    role_settings = _role_settings_of(request)
    if not additional:
        role_settings.notify_activation_approver_additional = ""
        role_settings.notify_eligible_approver_additional = ""
    role_notify(role_settings=role_settings, event=_matrix_event(request), notices=[notice], now=now)


def _notify_granted(request: ActivationRequest, now: datetime) -> None:
    """Rules 16 and 15: the requester hears the activation is granted, the administrators get
    the role activation alert."""
    _activation_notices(request, "activation-granted", now)


def _activation_notices(request: ActivationRequest, requester_template: str, now: datetime) -> None:
    context = {"request": request}
    role_notify(
        role_settings=_role_settings_of(request),
        event="activation",
        notices=[
            Notice("assignee", requester_template, [request.requester], context),
            Notice("admin", "activation-alert", pim_administrators(at=now).order_by("pk"), context),
        ],
        now=now,
    )


def _notify_decided(request: ActivationRequest, now: datetime) -> None:
    """The requester hears the outcome; every approver hears who decided. A granted activation
    goes through the role's activation rules (the requester's and the administrators')."""
    if request.kind == Kind.ACTIVATE and request.status == Status.GRANTED:
        _activation_notices(request, "request-decided", now)
        _notify(request, "request-decided", request_approvers(request), now)
        return
    _notify(request, "request-decided", [request.requester, *request_approvers(request)], now)


def _ensure_active_user(user: User, doing: str) -> None:
    # The database, not the caller's copy of the user: a deactivation may have committed since
    # that copy was loaded (re-check who is acting, SPEC 5).
    if not User.objects.filter(pk=user.pk, is_active=True).exists():
        raise PermissionDenied(f"A deactivated account cannot {doing}.")


def _require_fresh_mfa(mfa_verified_at: datetime | None, now: datetime) -> None:
    if not verification_is_fresh(mfa_verified_at, now):
        raise ActivationError({"otp_token": "Enter a fresh code from your authenticator app to continue."})


def _require_passkey(
    mfa_verified_at: datetime | None, mfa_factor: str | None, now: datetime, *, user: User, why: str
) -> None:
    """A phishing-resistant step-up: a passkey, within the step-up window (``why`` names what
    needs it, e.g. "Global Administrator needs a passkey to activate")."""
    if verification_is_fresh(mfa_verified_at, now, factor=mfa_factor, phishing_resistant=True):
        return
    if mfa_factor in (Factor.TOTP, Factor.RECOVERY_CODE) and verification_is_fresh(mfa_verified_at, now):
        label = Factor(mfa_factor).label
        refused = f"{'an' if label[0] in 'aeiou' else 'a'} {label} is not accepted for it"
    else:
        refused = "confirm with one of your passkeys to continue"
    how = "" if passkeys_enrolled(user=user) else " You have no passkey yet: add one on your Security page."
    raise ActivationError(
        {
            "otp_token": (
                f"{why} (its authentication strength is phishing-resistant, because codes can be "
                f"phished): {refused}.{how}"
            )
        }
    )


def _hours(duration: timedelta) -> str:
    hours = duration.total_seconds() / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"
