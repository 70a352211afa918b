"""Activation pages: My roles (the requester's home), activate, my requests, the approvals
inbox, the request page and its actions (decide, cancel, deactivate, revoke), extension and
renewal requests; and, for audit readers, an activation's evidence.

Thin: parse the input, call one selector or service, render. Every refusal comes back as a
message on the page; no GET or HEAD changes anything (mail scanners open approval links)."""

from datetime import datetime, timedelta
from typing import cast

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.services import MfaError, mfa_verify_code
from audit.decorators import audit_reader_required
from common.decorators import verified_required
from common.redirects import safe_next
from common.step_up import (
    mark_step_up,
    passkeys_enrolled,
    step_up_factor,
    step_up_is_fresh,
    step_up_verified_at,
)
from roles.directory_selectors import assignment_directory_status
from roles.models import ActiveAssignment

from . import evidence, selectors, services
from .forms import (
    ActivateForm,
    ActivateSeveralForm,
    BulkDecisionForm,
    DecisionForm,
    EligibilityChangeForm,
    InboxFilterForm,
    RevokeForm,
    duration_label,
)
from .models import ActivationRequest, TransitionNotAllowed
from .tokens import approval_token_problem

Status = ActivationRequest.Status
Kind = ActivationRequest.Kind
PAGE_SIZE = 25
MAX_TOKEN_LENGTH = 1000
# What a refused action can raise: a clear message for the person, never a 500.
REFUSALS = (ValidationError, PermissionDenied, TransitionNotAllowed)
safe_methods_and_post = require_http_methods(["GET", "HEAD", "POST"])


# --- My roles ------------------------------------------------------------------------------


MY_ROLES_TABS = ("eligible", "active", "expired")


@require_http_methods(["GET", "HEAD"])
@verified_required
def my_roles(request):
    """The requester's home, in Entra's three tabs: Eligible (activate one or several; a
    pending request on its row; "active until" instead of Activate on a role held now),
    Active (deactivate, extend a direct assignment ending soon) and Expired (renew)."""
    now = timezone.now()
    tab = request.GET.get("tab", "eligible")
    if tab not in MY_ROLES_TABS:
        tab = "eligible"
    context = {
        "now": now,
        "tab": tab,
        "roles": selectors.my_roles_for_user(user=request.user, at=now),
    }
    return render(request, "activations/my_roles.html", context)


# --- Activate ------------------------------------------------------------------------------


@safe_methods_and_post
@verified_required
def activate(request, pk):
    """Activate one of the user's eligibilities: granted at once, or sent for approval."""
    now = timezone.now()
    eligible = selectors.eligible_get_for_requester(user=request.user, pk=pk, at=now)
    role_settings = eligible.role.settings
    form = ActivateForm(
        request.POST if request.method == "POST" else None,
        eligible=eligible,
        role_settings=eligible.role.settings,
        code_required=not step_up_is_fresh(request),
        now=now,
    )
    if request.method == "POST" and form.is_valid() and _verify_code(request, form):
        try:
            activation = services.activation_request(
                requester=request.user,
                eligible=eligible,
                mfa_verified_at=step_up_verified_at(request),
                mfa_factor=step_up_factor(request),
                **form.service_arguments(),
            )
        except REFUSALS as error:
            _show_refusal(form, error)
        else:
            messages.success(request, _requested_message(activation, now))
            return redirect(activation)
    context = {
        "form": form,
        "eligible": eligible,
        "role_settings": role_settings,
        "now": now,
        **_step_up_context(request, needs_passkey=role_settings.activation_needs_passkey),
    }
    return render(request, "activations/activate.html", context)


def _step_up_context(request, *, needs_passkey: bool) -> dict:
    """What the page says about the step-up an action takes, and whether its form asks for a
    passkey before it is submitted (the person has one and the session's step-up is not
    fresh, or not a passkey's where only a passkey will do)."""
    fresh = step_up_is_fresh(request, phishing_resistant=needs_passkey)
    has_passkeys = passkeys_enrolled(user=request.user)
    return {
        "needs_passkey": needs_passkey,
        "has_passkeys": has_passkeys,
        "step_up_fresh": fresh,
        "passkey_step_up": has_passkeys and not fresh,
    }


def _requested_message(activation: ActivationRequest, now: datetime) -> str:
    if activation.status == Status.PENDING_APPROVAL:
        return _sent_for_approval(activation)
    # granted: it has its assignment and its end
    assignment = cast(ActiveAssignment, activation.active_assignment)
    ends_at = cast(datetime, activation.ends_at)
    if assignment.starts_at > now + timedelta(minutes=1):
        return (
            f"{activation.role}: scheduled from {_moment(assignment.starts_at, now, zone=False)} "
            f"until {_moment(ends_at, now)}."
        )
    return f"{activation.role}: active until {_moment(ends_at, now)}."


def _sent_for_approval(activation: ActivationRequest) -> str:
    count = activation.approvers.count()
    return f"Sent for approval to {count} approver{'s' if count != 1 else ''}."


def _moment(moment: datetime, now: datetime, *, zone: bool = True) -> str:
    """A time in the person's time zone (the active one): 13:30 CET today, else with its date."""
    moment, now = timezone.localtime(moment), timezone.localtime(now)
    text = f"{moment:%H:%M}" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M}"
    return f"{text} {moment.tzname()}" if zone else text


@safe_methods_and_post
@verified_required
def activate_several(request):
    """Activate several eligibilities at once (ticked on My roles): one justification, one
    ticket, one code; each role's own rules apply and each gets its own request."""
    now = timezone.now()
    pks = request.POST.getlist("eligible") if request.method == "POST" else request.GET.getlist("eligible")
    eligibilities = selectors.eligibilities_get_for_requester(user=request.user, pks=pks, at=now)
    if not eligibilities:
        messages.error(request, "Tick the roles to activate first.")
        return redirect("activations:my_roles")
    form = ActivateSeveralForm(
        request.POST if "confirm" in request.POST else None,
        eligibilities=eligibilities,
        code_required=not step_up_is_fresh(request),
        now=now,
    )
    if form.is_bound and form.is_valid() and _verify_code(request, form):
        try:
            outcomes = services.activations_request_many(
                requester=request.user,
                choices=[services.ActivationChoice(eligible=e, duration=d) for e, d in form.durations()],
                justification=form.cleaned_data["justification"],
                ticket_number=form.cleaned_data["ticket_number"],
                ticket_system=form.cleaned_data["ticket_system"],
                mfa_verified_at=step_up_verified_at(request),
                mfa_factor=step_up_factor(request),
            )
        except REFUSALS as error:
            _show_refusal(form, error)
        else:
            _report_activations(request, outcomes, now)
            return redirect("activations:my_roles")
    context = {"form": form, "eligibilities": eligibilities, "now": now}
    return render(request, "activations/activate_several.html", context)


def _report_activations(request, outcomes, now: datetime) -> None:
    for outcome in outcomes:
        if outcome.ok:
            messages.success(request, _requested_message(outcome.request, now))
        else:
            messages.error(request, f"{outcome.key.role}: {' '.join(outcome.errors)}")


# --- Lists ---------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@verified_required
def my_requests(request):
    """The user's requests, newest first, with Cancel and Deactivate."""
    now = timezone.now()
    page = Paginator(selectors.requests_for_user(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    activations = list(page.object_list)
    rows = [
        (activation, selectors.request_actions(user=request.user, request=activation, at=now))
        for activation in activations
    ]
    context = {"page": page, "activations": activations, "rows": rows, "now": now}
    return render(request, "activations/my_requests.html", context)


@safe_methods_and_post
@verified_required
def inbox(request):
    """Requests waiting for the user's decision, oldest first, paged and filtered (role,
    requester, waiting time). POST: approve or deny the ticked ones with one reason and one
    code, each on its own (a request decided meanwhile or not the user's to decide is reported
    with its reason; the others are decided)."""
    now = timezone.now()
    decision_form = None
    if request.method == "POST":
        decision_form = BulkDecisionForm(request.POST, code_required=not step_up_is_fresh(request))
        if decision_form.is_valid() and _verify_code(request, decision_form):
            _decide_ticked(request, decision_form)
            return redirect(request.get_full_path())
    roles, requesters = selectors.approvals_inbox_choices(user=request.user, at=now)
    filter_form = InboxFilterForm(request.GET or None, roles=roles, requesters=requesters)
    pending = selectors.approvals_inbox_for_user(user=request.user, filters=filter_form.filters(), at=now)
    page = Paginator(pending, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "activations": list(page.object_list),
        "now": now,
        "filter_form": filter_form,
        "filtered": filter_form.is_bound and any(filter_form.data.get(name) for name in filter_form.fields),
        "decision_form": decision_form or BulkDecisionForm(code_required=not step_up_is_fresh(request)),
        "ticked": {
            str(pk) for pk in (decision_form.cleaned_data.get("requests", []) if decision_form else [])
        },
        "page_query": _query_without_page(request),
    }
    return render(request, "activations/inbox.html", context)


def _decide_ticked(request, form) -> None:
    decision = form.cleaned_data["decision"]
    found, unknown = selectors.requests_get_for_decision(user=request.user, pks=form.cleaned_data["requests"])
    for _pk in unknown:
        messages.error(request, "A ticked request does not exist or is not yours to see; it was left alone.")
    if not found:
        return
    outcomes = services.activations_decide_each(
        approver=request.user,
        requests=found,
        decision=decision,
        reason=form.cleaned_data["reason"],
        mfa_verified_at=step_up_verified_at(request),
        mfa_factor=step_up_factor(request),
    )
    done = [outcome for outcome in outcomes if outcome.ok]
    if done:
        verb = "Approved" if decision == "approve" else "Denied"
        messages.success(request, f"{verb}: {len(done)} request{'s' if len(done) != 1 else ''}.")
    for outcome in outcomes:
        if not outcome.ok:
            activation = cast(ActivationRequest, outcome.key)
            messages.error(
                request,
                f"Not decided: {activation.role} for {activation.requester} — {' '.join(outcome.errors)}",
            )


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


# --- The request page ----------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@verified_required
def request_detail(request, pk):
    """What, who, why, status and history; the actions open to the viewer."""
    if "t" in request.GET:
        return _email_link_landing(request, pk)
    activation = selectors.request_get_for_user(user=request.user, pk=pk)
    return _render_request(request, activation)


def _email_link_landing(request, pk):
    """Arriving from an approval email (after sign-in, if needed): say what is wrong with the
    link, if anything, then continue at the same URL without the token so that it does not
    linger in the address bar, the history or logs. Changes nothing: scanners open every link."""
    activation = selectors.request_get(pk=pk)
    if not selectors.request_visible_to(user=request.user, request=activation):
        raise Http404("No such request.")  # a link sent to someone else reveals nothing
    token = request.GET.get("t", "")
    problem = (
        approval_token_problem(token, request=activation, user=request.user)
        if len(token) <= MAX_TOKEN_LENGTH
        else "This approval link is not valid."
    )
    if problem:
        messages.warning(request, problem)
    response = redirect(activation)
    # The one response whose URL carries a token: no Referer from it, even to this site.
    response["Referrer-Policy"] = "no-referrer"
    return response


def _render_request(request, activation, *, decision_form=None, revoke_form=None):
    now = timezone.now()
    actions = selectors.request_actions(user=request.user, request=activation, at=now)
    live = selectors.request_is_live(activation, now)
    needs_passkey = activation.role.settings.approval_needs_passkey if actions.decide else False
    if decision_form is None and actions.decide:
        decision_form = DecisionForm(
            code_required=not step_up_is_fresh(request), passkey_required=needs_passkey
        )
    if revoke_form is None and actions.revoke:
        revoke_form = RevokeForm()
    context = {
        "activation": activation,
        "now": now,
        "actions": actions,
        "is_requester": activation.requester_id == request.user.pk,
        "pending": selectors.request_is_pending(activation, now),
        "live": live,
        "lapsed": activation.status == Status.GRANTED and not live and activation.kind == Kind.ACTIVATE,
        "approvals": selectors.request_approvals(request=activation),
        "approvers": selectors.request_approver_users(request=activation),
        "recent": selectors.request_recent_activations(request=activation),
        "directory": assignment_directory_status(assignment=activation.active_assignment),
        "decision_form": decision_form,
        "revoke_form": revoke_form,
        **(_step_up_context(request, needs_passkey=needs_passkey) if decision_form else {}),
    }
    return render(request, "activations/request_detail.html", context)


@safe_methods_and_post
@verified_required
def decide(request, pk):
    """An approver approves or denies, with a fresh code (and a reason to deny)."""
    activation = selectors.request_get_for_user(user=request.user, pk=pk)
    if request.method != "POST":
        return redirect(activation)
    refusal = _decision_refusal(request.user, activation)
    if refusal:
        messages.error(request, refusal)
        return redirect(activation)
    form = DecisionForm(
        request.POST,
        code_required=not step_up_is_fresh(request),
        passkey_required=activation.role.settings.approval_needs_passkey,
    )
    if form.is_valid() and _verify_code(request, form):
        decision = form.cleaned_data["decision"]
        service = services.activation_approve if decision == "approve" else services.activation_deny
        try:
            decided = service(
                approver=request.user,
                request=activation,
                reason=form.cleaned_data["reason"],
                mfa_verified_at=step_up_verified_at(request),
                mfa_factor=step_up_factor(request),
            )
        except REFUSALS as error:
            _show_refusal(form, error)
        else:
            messages.success(request, _decision_message(decided, decision))
            return redirect(decided)
    activation = selectors.request_get(pk=pk)  # as it is now
    if not selectors.request_awaits_decision_by(user=request.user, request=activation):
        # Decided by someone else meanwhile, timed out, or this approver can no longer decide:
        # say why (the service's message names who decided and how) and show the request.
        for message in form.non_field_errors() or ["This request can no longer be decided by you."]:
            messages.error(request, message)
        return redirect(activation)
    return _render_request(request, activation, decision_form=form)


def _decision_refusal(user, activation) -> str | None:
    """Refusals that need no code: who may never decide this request."""
    try:
        services.activation_decider_check(approver=user, request=activation)
    except PermissionDenied as error:
        return str(error)
    return None


def _decision_message(activation: ActivationRequest, decision: str) -> str:
    requester = activation.requester
    if decision == "deny":
        return f"Denied. {requester} will be told."
    return _approval_message(activation) + _capped_note(activation)


def _approval_message(activation: ActivationRequest) -> str:
    requester = activation.requester
    if activation.status == Status.PENDING_APPROVAL:
        missing = activation.approvals_required - activation.approvals.filter(decision="approve").count()
        return f"Your approval is recorded; {missing} more approval{'s' if missing != 1 else ''} needed."
    if activation.kind == Kind.ACTIVATE:
        until = f"{activation.ends_at:%Y-%m-%d %H:%M}"
        return f"Approved: {activation.role} is active for {requester} until {until} UTC."
    done = "extended" if activation.kind == Kind.EXTEND else "renewed"
    return f"Approved: the eligibility of {requester} for {activation.role} was {done}."


def _capped_note(activation: ActivationRequest) -> str:
    """Decisions re-check the live policy: say so when the role's maximum cut the duration."""
    if not activation.requested_duration:
        return ""
    return (
        f" The duration was capped to {duration_label(activation.duration)}, the role's maximum now "
        f"({duration_label(activation.requested_duration)} were asked for)."
    )


@safe_methods_and_post
@verified_required
def cancel(request, pk):
    """The requester (or a PIM Administrator) withdraws a pending request."""
    activation = selectors.request_get_for_user(user=request.user, pk=pk)
    if request.method == "POST":
        _carry_out(
            request,
            lambda: services.activation_cancel(actor=request.user, request=activation),
            "Request canceled.",
        )
    return redirect(safe_next(request) or activation.get_absolute_url())


@safe_methods_and_post
@verified_required
def deactivate(request, pk):
    """The requester ends their activation early, once they confirmed it: the Deactivate
    buttons lead to a page that says what happens (GET, or a POST without ``confirm``), whose
    own button posts ``confirm=yes``. Works without JavaScript."""
    activation = selectors.request_get_for_user(user=request.user, pk=pk)
    back = safe_next(request) or activation.get_absolute_url()
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        _carry_out(
            request,
            lambda: services.activation_deactivate(requester=request.user, request=activation),
            f"Deactivated: you no longer hold {activation.role} at {activation.scope}.",
        )
        return redirect(back)
    actions = selectors.request_actions(user=request.user, request=activation, at=timezone.now())
    if not actions.deactivate:
        return redirect(back)
    context = {"activation": activation, "next": back}
    return render(request, "activations/deactivate_confirm.html", context)


@safe_methods_and_post
@verified_required
def revoke(request, pk):
    """A PIM Administrator ends someone's activation now, with a reason."""
    activation = selectors.request_get_for_user(user=request.user, pk=pk)
    if request.method != "POST":
        return redirect(activation)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        if request.user.has_perm("roles.manage_active_assignments"):
            return _render_request(request, activation, revoke_form=form)
        messages.error(request, "Only a PIM Administrator can revoke activations.")
        return redirect(activation)
    _carry_out(
        request,
        lambda: services.activation_revoke(
            actor=request.user, request=activation, reason=form.cleaned_data["reason"]
        ),
        f"Revoked: {activation.requester} no longer holds {activation.role} at {activation.scope}.",
    )
    return redirect(activation)


# --- Extension and renewal -----------------------------------------------------------------


@safe_methods_and_post
@verified_required
def eligibility_change(request, pk, kind):
    """Ask for one's own eligibility to be extended (ending within 14 days) or renewed (ended
    within the last 30 days); approved like an activation."""
    eligible = selectors.eligible_get_own(user=request.user, pk=pk)
    max_days = max(1, eligible.role.settings.eligible_max_duration.days)
    form = EligibilityChangeForm(request.POST if request.method == "POST" else None, max_days=max_days)
    if request.method == "POST" and form.is_valid():
        service = services.extension_request if kind == Kind.EXTEND else services.renewal_request
        try:
            activation = service(
                requester=request.user,
                eligible=eligible,
                duration=timedelta(days=form.cleaned_data["days"]),
                justification=form.cleaned_data["justification"],
            )
        except REFUSALS as error:
            _show_refusal(form, error)
        else:
            messages.success(request, _sent_for_approval(activation))
            return redirect(activation)
    context = {"form": form, "eligible": eligible, "kind": kind, "now": timezone.now()}
    return render(request, "activations/eligibility_change.html", context)


@safe_methods_and_post
@verified_required
def active_change(request, pk, kind):
    """Ask for one's own direct active assignment to be extended (ending within 14 days) or
    renewed (ended within the last 30 days); approved like an activation."""
    assignment = selectors.active_get_own(user=request.user, pk=pk)
    max_days = max(1, assignment.role.settings.active_max_duration.days)
    form = EligibilityChangeForm(request.POST if request.method == "POST" else None, max_days=max_days)
    if request.method == "POST" and form.is_valid():
        service = (
            services.active_extension_request if kind == Kind.EXTEND else services.active_renewal_request
        )
        try:
            activation = service(
                requester=request.user,
                assignment=assignment,
                duration=timedelta(days=form.cleaned_data["days"]),
                justification=form.cleaned_data["justification"],
            )
        except REFUSALS as error:
            _show_refusal(form, error)
        else:
            messages.success(request, _sent_for_approval(activation))
            return redirect(activation)
    context = {"form": form, "eligible": assignment, "kind": kind, "now": timezone.now(), "active": True}
    return render(request, "activations/eligibility_change.html", context)


# --- Helpers -------------------------------------------------------------------------------


OPTIONAL_CODE_WRONG = (
    "You confirmed with your authenticator a moment ago, so no code is needed: "
    "clear the field, or type the code your app shows now."
)


def _verify_code(request, form) -> bool:
    """Check the code typed into the form, if any, and record the step-up in the session.

    Called outside any transaction of ours: a refused code's audit event and throttle count
    are committed by mfa_verify_code itself. Without a code the service decides whether the
    session's last check is fresh enough."""
    token = form.cleaned_data.get("otp_token")
    if not token:
        return True
    try:
        device = mfa_verify_code(user=request.user, token=token)
    except MfaError as error:
        field = form.fields["otp_token"]
        if not field.required:
            # One message, not "a code is not needed now" beside "that code is wrong": say both
            # things at once, and what to do.
            field.help_text = form["otp_token"].help_text = ""
            form.add_error("otp_token", [*error.messages, OPTIONAL_CODE_WRONG])
        else:
            form.add_error("otp_token", error.messages)
        return False
    mark_step_up(request, device)
    return True


def _show_refusal(form, error: Exception) -> None:
    """Put a service's refusal on the form: next to the field it names, else above the form."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for field, field_messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, field_messages)
    else:
        form.add_error(None, _messages_of(error))


def _messages_of(error: Exception) -> list[str]:
    if isinstance(error, ValidationError):
        return error.messages
    return [str(error) or "That is not allowed."]


def _carry_out(request, action, success: str) -> None:
    try:
        action()
    except REFUSALS as error:
        for message in _messages_of(error):
            messages.error(request, message)
    else:
        messages.success(request, success)


# --- Evidence (with the audit log, for audit readers) ----------------------------------------


@audit_reader_required
def activation_evidence(request, pk):
    return render(request, "activations/evidence.html", {"evidence": evidence.activation_evidence(pk=pk)})
