"""Django admin for people and groups.

As for the catalog (roles.admin), the admin never saves a model itself: profile edits,
deactivation and group membership go through accounts.services, so permission checks,
anti-lockout and the audit event always apply. A refusal is shown as an error message and
nothing changes. Accounts come from the directory (or the demo command): no adding or
deleting people here.
"""

from typing import ClassVar

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.template.response import TemplateResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from common.admin import ServiceBackedAdmin

from . import services
from .models import DirectoryGroup, User


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=settings.PIM_MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept in the audit log.",
    )


def refusal_text(error: Exception) -> str:
    return "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)


@admin.register(User)
class UserAdmin(ServiceBackedAdmin):
    list_display = ("username", "display_name", "email", "is_active", "manager", "last_sign_in_at")
    list_filter = ("is_active", "is_superuser")
    list_select_related = ("manager",)
    search_fields = ("username", "display_name", "email", "first_name", "last_name", "external_id")
    ordering = ("username",)
    fields = (
        "username",
        *services.USER_EDITABLE_FIELDS,
        "is_active",
        "is_superuser",
        "external_id",
        "group_names",
        "last_sign_in_at",
        "date_joined",
    )
    readonly_fields = (
        "username",
        "is_active",
        "is_superuser",
        "external_id",
        "group_names",
        "last_sign_in_at",
        "date_joined",
    )
    raw_id_fields = ("manager",)
    actions = ["deactivate", "reactivate"]

    def has_add_permission(self, request):
        return False  # people come from the directory or an invitation (/manage/people/)

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: the audit log and assignments keep pointing at them

    @admin.display(description="Groups")
    def group_names(self, obj):
        return ", ".join(obj.directory_groups.values_list("name", flat=True)) or "—"

    def save_model(self, request, obj, form, change):
        changes = {f: form.cleaned_data[f] for f in services.USER_EDITABLE_FIELDS if f in form.changed_data}
        if changes:
            services.user_update(actor=request.user, user=obj, changes=changes)

    @admin.action(description="Deactivate the selected people…", permissions=["change"])
    def deactivate(self, request, queryset):
        return self._status_change(request, queryset, services.user_deactivate, verb="Deactivate")

    @admin.action(description="Reactivate the selected people…", permissions=["change"])
    def reactivate(self, request, queryset):
        return self._status_change(request, queryset, services.user_reactivate, verb="Reactivate")

    def _status_change(self, request, queryset, service, *, verb):
        """First a confirmation page asking why; its POST (with "confirm") calls the service
        once per person, each in its own transaction, and reports every refusal."""
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": f"{verb} people",
                "verb": verb,
                "queryset": queryset,
                "form": form,
                "action": verb.lower(),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, "admin/accounts/user/status_confirmation.html", context)
        done = 0
        for user in queryset:
            try:
                service(actor=request.user, user=user, reason=form.cleaned_data["reason"])
            except (ValidationError, PermissionDenied) as error:
                self.message_user(request, f"{user}: refused: {refusal_text(error)}", level=messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb}d {done} account(s).", level=messages.SUCCESS)
        return None  # back to the list


class DirectoryGroupForm(forms.ModelForm):
    class Meta:
        model = DirectoryGroup
        fields = ("name", "description", "members")


@admin.register(DirectoryGroup)
class DirectoryGroupAdmin(ServiceBackedAdmin):
    form = DirectoryGroupForm
    list_display = ("name", "member_count", "external_id", "created_at")
    search_fields = ("name", "description", "external_id")
    fields: ClassVar[tuple[str, ...]] = ("name", "description", "members", "external_id", "created_at")
    readonly_fields: ClassVar[tuple[str, ...]] = ("external_id", "created_at")
    filter_horizontal = ("members",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members"))

    def has_delete_permission(self, request, obj=None):
        return False  # deleting a group would delete its assignments and their history

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            group = services.group_create(
                actor=request.user, name=data["name"], description=data.get("description", "")
            )
            obj.pk = group.pk
            obj._state.adding = False
        else:
            changes = {f: data[f] for f in ("name", "description") if f in form.changed_data}
            if changes:
                services.group_update(actor=request.user, group=obj, changes=changes)
            group = DirectoryGroup.objects.get(pk=obj.pk)
        wanted = set(data.get("members", []))
        current = set(group.members.all())
        for user in sorted(wanted - current, key=lambda u: u.pk):
            services.group_member_add(actor=request.user, group=group, user=user)
        for user in sorted(current - wanted, key=lambda u: u.pk):
            services.group_member_remove(actor=request.user, group=group, user=user)


# django-otp's device admin pages would show an authenticator's secret (and its QR code) and let
# anyone with admin access, the break-glass account included, plant a device on any person:
# gone. People manage their own devices (accounts:mfa_devices); an administrator can only
# reset them all (/manage/people/, accounts.services.mfa_reset).
for _device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)
