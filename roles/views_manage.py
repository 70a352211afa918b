"""Administration in the portal (/manage/roles/): the Roles list, a role's page, the settings
editor and the eligible and active assignment forms, for PIM Administrators while their role is
active (everyone else gets 404, as if the pages did not exist). Every change needs a fresh
step-up and goes through the roles services, so policy, anti-lockout, the two-person rule and
the audit event apply exactly as from the Django admin or the API. Thin: parse, call one
selector or service, render. GET changes nothing."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from accounts.models import DirectoryGroup, User
from common.decorators import step_up_required, verified_required
from common.step_up import step_up_verified_at

from . import selectors, services
from .directory_selectors import directory_statuses
from .forms_manage import AssignmentEditorForm, RoleSettingsEditorForm, duration_words
from .models import ActiveAssignment, EligibleAssignment, PendingChange, Role
from .two_person import two_person_rule_on
from .two_person.selectors import pending_changes_open

REFUSALS = (ValidationError, PermissionDenied)
PENDING_MESSAGE = "Saved as a pending change: a second PIM Administrator must approve it."
get_and_post = require_http_methods(["GET", "HEAD", "POST"])


def administrators_only(view):
    """404 unless the signed-in, verified user holds the PIM Administrator role right now."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not selectors.user_is_pim_administrator(user=request.user):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


def _flag(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


def _source(query) -> str:
    """The "Source" filter's value; the earlier entra=yes|no still works (bookmarks)."""
    source = query.get("source") or {"yes": "entra", "no": "other"}.get(query.get("entra", ""), "")
    return source if source in selectors.ROLE_SOURCES else ""


@require_safe
@verified_required
@administrators_only
def role_list(request):
    """The catalog, searched and filtered, 25 a page."""
    text = request.GET.get("q", "").strip()[:200]
    flags = {name: _flag(request.GET.get(name)) for name in ("privileged", "eligible")}
    source = _source(request.GET)
    roles = selectors.roles_for_administration(
        text=text, privileged=flags["privileged"], has_eligible=flags["eligible"], source=source
    )
    page = Paginator(roles, selectors.MANAGE_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "roles": list(page.object_list),
        "q": text,
        "filters": {**{name: request.GET.get(name, "") for name in flags}, "source": source},
        "query": query.urlencode(),
    }
    return render(request, "roles/manage/role_list.html", context)


@require_safe
@verified_required
def role_page(request, pk):
    role = selectors.role_get_for_administrator(user=request.user, pk=pk)
    eligible, active = (list(assignments) for assignments in selectors.role_assignments(role=role))
    in_directory = directory_statuses(assignments=[*eligible, *active])
    for assignment in (*eligible, *active):
        assignment.directory = in_directory.get(assignment.pk)
    context = {
        "role": role,
        "role_settings": role.settings,
        "owners": list(role.owners.all()),
        "eligible": eligible,
        "active": active,
        "in_directory": role.kind == Role.Kind.ENTRA,
        "now": timezone.now(),
        "who_approves": services.role_approvers_explained(role.settings),
        "durations": {
            "activation": duration_words(role.settings.activation_max_duration),
            "approval_timeout": duration_words(role.settings.approval_timeout),
            "eligible": duration_words(role.settings.eligible_max_duration),
            "active": duration_words(role.settings.active_max_duration),
        },
        "pending_changes": _pending(role),
        "entra_managed": _entra_managed(role),
    }
    return render(request, "roles/manage/role_detail.html", context)


@get_and_post
@step_up_required
def role_settings_edit(request, pk):
    """The editor. A valid POST shows what changes and asks to confirm; the confirmed POST
    (confirm=yes) saves through role_settings_update. A save that changes nothing writes
    nothing."""
    role = selectors.role_get_for_administrator(user=request.user, pk=pk)
    role_settings = role.settings
    bound = request.method == "POST"
    form = RoleSettingsEditorForm(request.POST if bound else None, role_settings=role_settings)
    context = {
        "role": role,
        "form": form,
        "entra_managed": _entra_managed(role),
        "pending_changes": _pending(role),
    }
    if not bound or not form.is_valid():
        context["who_approves"] = _who_approves_for(form, role_settings)
        return render(request, "roles/manage/settings_form.html", context)
    summary = form.summary()
    if not summary:
        messages.info(request, "Nothing changed: the settings are as they were.")
        return redirect("manage_roles:role", pk=role.pk)
    if request.POST.get("confirm") != "yes" or "edit" in request.POST:
        context["who_approves"] = _who_approves_for(form, role_settings)
        template = "settings_form" if "edit" in request.POST else "settings_confirm"
        context["summary"] = summary
        return render(request, f"roles/manage/{template}.html", context)
    try:
        result = services.role_settings_update(
            actor=request.user,
            role=role,
            changes=form.changes(),
            approvers=form.cleaned_data["approvers"],
            approver_groups=form.cleaned_data["approver_groups"],
        )
    except REFUSALS as error:
        _refusal_on(form, error)
        context["who_approves"] = _who_approves_for(form, role_settings)
        return render(request, "roles/manage/settings_form.html", context)
    if isinstance(result, PendingChange):
        messages.warning(request, PENDING_MESSAGE)
        return redirect(result)
    messages.success(request, f"Settings of {role} saved.")
    return redirect("manage_roles:role", pk=role.pk)


@require_safe
@verified_required
def who_approves(request, pk):
    """The editor's live line (JSON): who would approve with the approvers being chosen."""
    role = selectors.role_get_for_administrator(user=request.user, pk=pk)
    people = _pks(request.GET.getlist("approvers"))
    groups = _pks(request.GET.getlist("approver_groups"))
    approvers = list(User.objects.filter(pk__in=people, is_active=True))
    approvers += [user for name in _names(request.GET.get("approvers_add")) for user in _person(name)]
    approver_groups = list(DirectoryGroup.objects.filter(pk__in=groups))
    approver_groups += [g for name in _names(request.GET.get("approver_groups_add")) for g in _group(name)]
    text = services.role_approvers_explained(
        role.settings,
        require_approval=request.GET.get("require_approval") in ("on", "true", "1"),
        approvers=approvers,
        approver_groups=approver_groups,
    )
    return JsonResponse({"text": text})


@get_and_post
@step_up_required
def eligible_new(request, pk):
    return _assignment_new(request, pk, kind="eligible")


@get_and_post
@step_up_required
def active_new(request, pk):
    return _assignment_new(request, pk, kind="active")


def _assignment_new(request, pk, *, kind: str):
    """A new eligible or active assignment through eligible_assign / active_assign. A refusal
    keeps everything typed and says what to change."""
    role = selectors.role_get_for_administrator(user=request.user, pk=pk)
    now = timezone.now()
    bound = request.method == "POST"
    form = AssignmentEditorForm(
        request.POST if bound else None, kind=kind, role_settings=role.settings, now=now
    )
    if bound and form.is_valid():
        data = form.cleaned_data
        arguments = {
            "actor": request.user,
            "role": role,
            "principal": data["principal"],
            "scope": data["scope"],
            "starts_at": data["starts_at"],
            "ends_at": data["ends_at"],
            "justification": data["justification"],
            "ticket_number": data["ticket_number"],
            "ticket_system": data["ticket_system"],
            "now": now,
        }
        result: EligibleAssignment | ActiveAssignment | PendingChange
        try:
            if kind == "eligible":
                result = services.eligible_assign(**arguments)
            else:
                result = services.active_assign(**arguments, mfa_verified_at=step_up_verified_at(request))
        except REFUSALS as error:
            _refusal_on(form, error)
        else:
            if isinstance(result, PendingChange):
                messages.warning(request, PENDING_MESSAGE)
                return redirect(result)
            end = f"until {result.ends_at:%Y-%m-%d %H:%M} UTC" if result.ends_at else "permanently"
            messages.success(
                request, f"{result.principal} is now {kind} for {role} at {result.scope}, {end}."
            )
            return redirect("manage_roles:role", pk=role.pk)
    context = {
        "role": role,
        "form": form,
        "kind": kind,
        "self_notice": two_person_rule_on(),
    }
    return render(request, "roles/manage/assignment_form.html", context)


@require_safe
@verified_required
@administrators_only
def principal_search(request):
    """Suggestions for the pickers (JSON): people and/or groups whose name contains ?q=."""
    text = request.GET.get("q", "")[:100]
    kind = request.GET.get("kind", "principals")
    results = []
    if kind in ("people", "principals"):
        results += [
            {"value": user.username, "label": f"{user} · {user.email or user.username}", "kind": "person"}
            for user in selectors.people_search(text=text)
        ]
    if kind in ("groups", "principals"):
        prefix = "group:" if kind == "principals" else ""
        results += [
            {"value": f"{prefix}{group.name}", "label": f"{group.name} · group", "kind": "group"}
            for group in selectors.groups_search(text=text)
        ]
    return JsonResponse({"results": results})


# --- Helpers -------------------------------------------------------------------------------


def _who_approves_for(form: RoleSettingsEditorForm, role_settings) -> str:
    """The line for the form as filled in (as stored when it is not valid yet)."""
    if form.is_bound and form.is_valid():
        return services.role_approvers_explained(
            role_settings,
            require_approval=form.cleaned_data.get("require_approval", role_settings.require_approval),
            approvers=form.cleaned_data["approvers"],
            approver_groups=form.cleaned_data["approver_groups"],
        )
    return services.role_approvers_explained(role_settings)


def _refusal_on(form, error: Exception) -> None:
    """A service's refusal on the form: next to the field it names, else above the form."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for field, field_messages in error.message_dict.items():
            target = form.error_field_for(field) if hasattr(form, "error_field_for") else field
            form.add_error(target if target in form.fields else None, field_messages)
    elif isinstance(error, ValidationError):
        form.add_error(None, error.messages)
    else:
        form.add_error(None, str(error) or "That is not allowed.")


def _pending(role: Role) -> list[PendingChange]:
    return list(pending_changes_open(role=role).select_related("proposer"))


def _entra_managed(role: Role) -> bool:
    managed = (Role.Kind.ENTRA, Role.Kind.GROUP)  # a group's member and owner policies are imported too
    return role.kind in managed and bool(getattr(settings, "ENTRA_SYNC_ENABLED", False))


def _pks(values: list[str]) -> list[int]:
    return [int(value) for value in values if value.isdigit()][:200]


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()][:50]


def _person(name: str) -> list[User]:
    return list(User.objects.filter(username__iexact=name, is_active=True)[:1]) or list(
        User.objects.filter(email__iexact=name, is_active=True)[:1]
    )


def _group(name: str) -> list[DirectoryGroup]:
    return list(DirectoryGroup.objects.filter(name__iexact=name)[:1])
