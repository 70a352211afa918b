"""People, for PIM Administrators (/manage/people/): list and search, invite, edit the display
name and manager, deactivate and reactivate, reset MFA. Every change is an accounts service
(audited) and needs a fresh step-up; every page needs the active PIM Administrator role.
Also the invited person's landing page (the emailed link)."""

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from common.decorators import step_up_required, verified_required

from . import selectors, services
from .forms import InvitationPasswordForm, InviteForm, PersonForm, ReasonForm
from .models import User
from .sso import INVITED_USER_SESSION_KEY

PAGE_SIZE = 50
MANAGE_PERMISSION = "accounts.change_user"


def _require_admin(request) -> None:
    if not request.user.has_perm(MANAGE_PERMISSION):
        raise PermissionDenied("People are managed by PIM Administrators: activate your role first.")


@require_http_methods(["GET", "HEAD"])
@verified_required
def people_list(request):
    _require_admin(request)
    query = request.GET.get("q", "")
    page = Paginator(selectors.people_search(query=query), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/people/list.html", {"page": page, "people": list(page), "q": query})


@never_cache
@step_up_required
def person_invite(request):
    _require_admin(request)
    form = InviteForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        data = form.cleaned_data
        try:
            person = services.user_invite(
                actor=request.user,
                username=data["username"],
                email=data["email"],
                display_name=data["display_name"],
                manager=data["manager"],
                kind=data["kind"],
            )
        except services.AccountError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"{person} was invited: the email is on its way to {person.email}.")
            return redirect("people:detail", pk=person.pk)
    return render(request, "accounts/people/invite.html", {"form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@verified_required
def person_detail(request, pk):
    _require_admin(request)
    person = selectors.person_get(pk=pk)
    initial = {
        "display_name": person.display_name,
        "manager": person.manager.username if person.manager else "",
    }
    form = PersonForm(initial=initial)
    if request.method == "POST":
        return _person_edit(request, person, initial)
    return _render_person(request, person, form)


@step_up_required
def _person_edit(request, person, initial):
    form = PersonForm(request.POST, initial=initial)
    if form.is_valid():
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        try:
            services.user_update(actor=request.user, user=person, changes=changes)
        except services.AccountError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"{person.username} was saved." if changes else "Nothing changed.")
            return redirect("people:detail", pk=person.pk)
    return _render_person(request, person, form)


def _render_person(request, person, form):
    context = {
        "person": person,
        "form": form,
        "reason_form": ReasonForm(),
        "devices": selectors.mfa_devices_for_user(user=person),
        "identities": person.external_identities.order_by("pk"),
        "invited": person.last_login is None and not person.has_usable_password(),
    }
    return render(request, "accounts/people/detail.html", context)


_ACTIONS = {
    "deactivate": (
        services.user_deactivate,
        "{person} was deactivated: their sessions ended and their roles were removed.",
    ),
    "reactivate": (services.user_reactivate, "{person} can sign in again (with no roles)."),
    "reset-mfa": (
        services.mfa_reset,
        "{person}'s authenticators were removed and their sessions ended: "
        "they enrol again at their next sign-in.",
    ),
}


@require_POST
@step_up_required
def person_action(request, pk, action):
    _require_admin(request)
    if action not in _ACTIONS and action != "resend":
        raise Http404("No such action.")
    person = selectors.person_get(pk=pk)
    if action == "resend":
        kind = "sso" if request.POST.get("kind") == "sso" else "password"
        try:
            services.user_invitation_resend(actor=request.user, user=person, kind=kind)
        except services.AccountError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"A new invitation is on its way to {person.email}.")
        return redirect("people:detail", pk=person.pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why (a reason is required).")
        return redirect("people:detail", pk=person.pk)
    service, done = _ACTIONS[action]
    try:
        service(actor=request.user, user=person, reason=form.cleaned_data["reason"])
    except services.AccountError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done.format(person=person))
    return redirect("people:detail", pk=person.pk)


def _form_errors(form, error) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


# --- The invited person ------------------------------------------------------------------------


@never_cache
def invitation_accept(request, kind, uidb64, token):
    """The emailed link: choose a password (then enrol an authenticator), or for single
    sign-on, sign in with the provider, which links that account to this person."""
    if kind not in ("password", "sso"):
        raise Http404("No such invitation.")
    person = _invited_person(uidb64)
    if (
        person is None
        or not person.is_active
        or not services.invitation_token_generator(kind).check_token(person, token)
    ):
        messages.error(
            request, "This invitation link is no longer valid: ask a PIM Administrator for a new one."
        )
        return redirect("accounts:login")
    if kind == "sso":
        request.session[INVITED_USER_SESSION_KEY] = person.pk
        return redirect("accounts:sso_start")
    form = InvitationPasswordForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            person = services.user_invitation_accept(user=person, password=form.cleaned_data["password1"])
        except services.AccountError as error:
            _form_errors(form, error)
        else:
            # The link proved the mailbox, the password is new: the first factor. MFA comes next.
            login(request, person, backend="accounts.backends.PasswordBackend")
            messages.success(request, "Your password is set. Now set up your authenticator app.")
            return redirect(reverse("accounts:mfa_enrol"))
    return render(request, "accounts/invitation.html", {"form": form, "person": person})


def _invited_person(uidb64: str) -> User | None:
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        return None
    return User.objects.filter(pk=pk).first()
