"""PIM for Groups in the administration pages (/manage/roles/groups/): govern a synced
directory group (its member and owner roles appear in the catalog) or stop governing one, for
PIM Administrators while active, with a fresh step-up, through roles.services.group_govern and
group_ungovern (audited there)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import DirectoryGroup
from common.decorators import step_up_required

from . import services
from .views_manage import administrators_only, get_and_post


class GroupGovernForm(forms.Form):
    group = forms.ModelChoiceField(
        queryset=DirectoryGroup.objects.none(),
        label="Directory group",
        help_text="A group synced from Microsoft Entra ID that the portal does not govern yet.",
        empty_label="Choose a group",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = (
            DirectoryGroup.objects.exclude(external_id="")
            .filter(governing_roles__isnull=True)
            .order_by("name")
        )


@get_and_post
@step_up_required
@administrators_only
def group_govern(request):
    form = GroupGovernForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            member, _owner = services.group_govern(actor=request.user, group=form.cleaned_data["group"])
        except (ValidationError, PermissionDenied) as error:
            form.add_error(None, "; ".join(getattr(error, "messages", [str(error)])))
        else:
            name = form.cleaned_data["group"].name
            messages.success(request, f"{name} is governed: its member and owner roles are in the catalog.")
            return redirect("manage_roles:role", pk=member.pk)
    return render(request, "roles/manage/group_govern.html", {"form": form})


@require_POST
@step_up_required
@administrators_only
def group_ungovern(request, group_pk: int):
    group = get_object_or_404(DirectoryGroup, pk=group_pk)
    try:
        services.group_ungovern(actor=request.user, group=group)
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, "; ".join(getattr(error, "messages", [str(error)])))
        role = group.governing_roles.order_by("group_access").first()
        return redirect("manage_roles:role", pk=role.pk) if role else redirect("manage_roles:list")
    messages.success(request, f"{group.name} is no longer governed: its roles left the catalog.")
    return redirect("manage_roles:list")
