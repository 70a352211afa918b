"""Pending changes (the two-person rule): the list, the approval page with the diff, and the
decision and cancel actions. Thin: parse, call one selector or service, render. No GET or HEAD
changes anything (mail scanners open approval links)."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from common.decorators import step_up_required, verified_required
from common.step_up import step_up_verified_at

from . import two_person
from .forms import ChangeDecisionForm
from .models import PendingChange
from .two_person import selectors

REFUSALS = (ValidationError, PermissionDenied)
safe_methods_and_post = require_http_methods(["GET", "HEAD", "POST"])


@require_http_methods(["GET", "HEAD"])
@verified_required
def pending_change_list(request):
    waiting, closed = selectors.pending_changes_for_user(user=request.user)
    context = {
        "waiting": list(waiting),
        "closed": list(closed),
        "now": timezone.now(),
        "two_person_rule_on": two_person.two_person_rule_on(),
    }
    return render(request, "roles/pending_change_list.html", context)


@require_http_methods(["GET", "HEAD"])
@step_up_required
def pending_change_detail(request, pk):
    """The approval page: what would change (now and proposed, per field) and the decision."""
    change = selectors.pending_change_get_for_user(user=request.user, pk=pk)
    return _render(request, change)


def _render(request, change: PendingChange, *, form=None):
    now = timezone.now()
    user = request.user
    open_ = change.status == PendingChange.Status.PENDING and now < change.decide_by
    is_proposer = change.proposer_id == user.pk
    if form is None and open_ and not is_proposer:
        form = ChangeDecisionForm()
    context = {
        "change": change,
        "rows": two_person.pending_change_rows(change),
        "now": now,
        "open": open_,
        "is_proposer": is_proposer,
        "is_beneficiary": user.pk in two_person.change_beneficiary_ids(change),
        "form": form if open_ and not is_proposer else None,
    }
    return render(request, "roles/pending_change_detail.html", context)


@safe_methods_and_post
@step_up_required
def pending_change_decide(request, pk):
    """Approve or reject, as a PIM Administrator who did not propose the change."""
    change = selectors.pending_change_get_for_user(user=request.user, pk=pk)
    if request.method != "POST":
        return redirect(change)
    form = ChangeDecisionForm(request.POST)
    if not form.is_valid():
        return _render(request, change, form=form)
    approve = form.cleaned_data["decision"] == "approve"
    service = two_person.pending_change_approve if approve else two_person.pending_change_reject
    try:
        service(
            approver=request.user,
            change=change,
            reason=form.cleaned_data["reason"],
            mfa_verified_at=step_up_verified_at(request),
        )
    except REFUSALS as error:
        for message in _messages_of(error):
            messages.error(request, message)
    else:
        done = "Approved and applied" if approve else "Rejected"
        messages.success(request, f"{done}: {change.get_kind_display().lower()} of {change.role}.")
    return redirect(change)


@safe_methods_and_post
@verified_required
def pending_change_cancel(request, pk):
    """The proposer withdraws their change."""
    change = selectors.pending_change_get_for_user(user=request.user, pk=pk)
    if request.method == "POST":
        try:
            two_person.pending_change_cancel(actor=request.user, change=change)
        except REFUSALS as error:
            for message in _messages_of(error):
                messages.error(request, message)
        else:
            messages.success(request, "Change canceled.")
    return redirect(change)


def _messages_of(error: Exception) -> list[str]:
    if isinstance(error, ValidationError):
        return error.messages
    return [str(error) or "That is not allowed."]
