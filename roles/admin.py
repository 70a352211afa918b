"""Django admin for the catalog, role settings and assignments.

The admin never saves a model itself: every add, change and delete calls the service that an
API or portal view would call, so policy, anti-lockout and the audit event always apply. A
refusal from the service is shown as an error message and nothing changes.
"""

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.html import format_html_join

from accounts.admin import DirectoryGroupAdmin
from accounts.models import DirectoryGroup
from common.admin import ServiceBackedAdmin
from common.step_up import step_up_verified_at

from . import notification_matrix, selectors, services
from .models import ActiveAssignment, EligibleAssignment, PendingChange, Role, RoleSettings
from .scopes import scope_validate
from .two_person.admin import SELF_ASSIGNMENT_NOTICE, PendingChangeAdmin, TwoPersonAdminMixin

admin.site.register(PendingChange, PendingChangeAdmin)


@admin.register(Role)
class RoleAdmin(TwoPersonAdminMixin, ServiceBackedAdmin):
    list_display = ("name", "kind", "tier", "privileged", "template_id", "lockout_protected")
    list_filter = ("kind", "tier", "privileged", "builtin")
    search_fields = ("name", "template_id", "description")
    fields = (
        "name",
        "description",
        "kind",
        "template_id",
        "tier",
        "privileged",
        "owners",
        "lockout_protected",
        "governed_group",
        "group_access",
    )
    filter_horizontal = ("owners",)

    def get_readonly_fields(self, request, obj=None):
        readonly = ["lockout_protected", "governed_group", "group_access"]
        if obj is not None:
            readonly += ["kind", "template_id"]
            if obj.builtin:
                readonly += ["name"]
        return readonly

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            role = services.role_create(
                actor=request.user,
                name=data["name"],
                kind=data["kind"],
                description=data.get("description", ""),
                template_id=data.get("template_id", ""),
                privileged=data["privileged"],
                tier=data["tier"],
            )
            obj.pk = role.pk
            obj._state.adding = False
        else:
            changes = {
                f: data[f] for f in ("name", "description", "tier", "privileged") if f in form.changed_data
            }
            if changes:
                result = services.role_update(actor=request.user, role=obj, changes=changes)
                # Held back by the two-person rule (owners below are not part of the rule).
                self.pending_change_remember(request, result)
        if "owners" in form.changed_data:
            role = Role.objects.get(pk=obj.pk)
            wanted = set(data["owners"])
            current = set(role.owners.all())
            for user in wanted - current:
                services.role_owner_add(actor=request.user, role=role, user=user)
            for user in current - wanted:
                services.role_owner_remove(actor=request.user, role=role, user=user)

    def has_delete_permission(self, request, obj=None):
        return False  # roles leave the catalog only by migration (history keeps pointing at them)

    def two_person_notice(self, request, obj) -> str:
        if obj is None or not obj.privileged:
            return ""
        return (
            "Un-marking this role as privileged (which takes its settings out of the rule) is saved as "
            "a pending change that a second PIM Administrator must approve."
        )

    def two_person_role(self, obj):
        return obj


class RoleSettingsForm(forms.ModelForm):
    class Meta:
        model = RoleSettings
        fields = (*services.SETTINGS_FIELDS, "approvers", "approver_groups")

    def clean(self):
        cleaned = super().clean()
        candidate = self.instance
        for field, value in cleaned.items():
            if field not in ("approvers", "approver_groups", "role"):
                setattr(candidate, field, value)
        try:
            services.role_settings_validate(
                candidate,
                approvers=cleaned.get("approvers", []),
                approver_groups=cleaned.get("approver_groups", []),
            )
        except ValidationError as error:
            raise ValidationError(
                error.message_dict if hasattr(error, "error_dict") else error.messages
            ) from None
        return cleaned


@admin.register(RoleSettings)
class RoleSettingsAdmin(TwoPersonAdminMixin, ServiceBackedAdmin):
    form = RoleSettingsForm
    list_display = (
        "role",
        "activation_max_duration",
        "require_mfa",
        "activation_authentication_strength",
        "approval_authentication_strength",
        "require_approval",
        "approvals_required",
    )
    list_filter = (
        "require_mfa",
        "activation_authentication_strength",
        "approval_authentication_strength",
        "require_approval",
        "role__tier",
    )
    search_fields = ("role__name",)
    filter_horizontal = ("approvers", "approver_groups")
    readonly_fields = ("role",)
    fieldsets: ClassVar[Any] = (  # one group per notification rule (django-stubs wants a literal tuple)
        (
            None,
            {
                "fields": (
                    "role",
                    *[f for f in services.SETTINGS_FIELDS if f not in notification_matrix.FIELDS],
                    "approvers",
                    "approver_groups",
                )
            },
        ),
        *(
            (
                f"Notifications: {rule.label}",
                {
                    "fields": ((rule.default_field, rule.critical_field), rule.additional_field),
                    "description": f"Entra rule {rule.entra_id}. Additional recipients: one per line.",
                },
            )
            for rule in notification_matrix.RULES
        ),
    )

    def has_add_permission(self, request):
        return False  # created with the role

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = [f for f in services.SETTINGS_FIELDS if f in form.changed_data]
        original = RoleSettings.objects.get(pk=obj.pk)
        result = services.role_settings_update(
            actor=request.user,
            role=original.role,
            changes={f: data[f] for f in fields},
            approvers=list(data["approvers"]),
            approver_groups=list(data["approver_groups"]),
        )
        self.pending_change_remember(request, result)

    def two_person_notice(self, request, obj) -> str:
        if obj is None:
            return ""
        if not obj.role.privileged:
            return f"{obj.role} is not marked privileged: changes to its settings apply at once."
        return (
            f"{obj.role} is privileged: a change that loosens its settings (a longer duration or "
            "approval timeout; MFA, justification, ticket or approval turned off; an authentication strength "
            "lowered from phishing-resistant to any MFA; permanent assignments "
            "allowed; fewer approvals; someone added who could approve; a notification recipient "
            "removed) is saved as a pending change that a second PIM Administrator must approve. "
            "A change that only tightens applies at once."
        )

    def two_person_role(self, obj):
        return obj.role if obj is not None else None


# The database's last line of defence, said in words (a constraint's name means nothing to a person).
CONSTRAINT_WORDS = {
    "_one_principal": "Choose either a user or a group.",
    "_ends_after_start": "The end must be after the start.",
}


class AssignmentForm(forms.ModelForm):
    reason = forms.CharField(required=False, widget=forms.Textarea, help_text="Why (kept in the audit log).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "starts_at" in self.fields:
            # The service starts it now when empty.
            self.fields["starts_at"].required = False
            self.fields["starts_at"].help_text = "Leave empty to start now."

    def _post_clean(self):
        super()._post_clean()
        errors = self._errors.get(forms.forms.NON_FIELD_ERRORS) if self._errors else None
        if not errors:
            return
        worded = []
        for message in errors:
            text = next((words for name, words in CONSTRAINT_WORDS.items() if name in message), message)
            if text not in worded:
                worded.append(text)
        self._errors[forms.forms.NON_FIELD_ERRORS] = self.error_class(worded, error_class="nonfield")

    def clean(self):
        cleaned = super().clean()
        role = cleaned.get("role") or getattr(self.instance, "role", None)
        if role and cleaned.get("scope"):
            cleaned["scope"] = scope_validate(cleaned["scope"], kind=role.kind)
        if not self.instance._state.adding:
            return cleaned
        if bool(cleaned.get("user")) == bool(cleaned.get("group")):
            raise ValidationError("Choose either a user or a group.")
        return cleaned


class AssignmentAdmin(TwoPersonAdminMixin, ServiceBackedAdmin):
    form = AssignmentForm
    list_display: tuple[str, ...] = (
        "role",
        "principal_label",
        "scope",
        "starts_at",
        "ends_at",
        "ended_at",
        "end_reason",
    )
    list_filter: ClassVar[tuple[str, ...]] = ("role__tier", "end_reason")
    search_fields = ("role__name", "user__username", "user__display_name", "group__name", "scope")
    list_select_related = ("role", "user", "group")
    raw_id_fields = ("user", "group")
    kind = ""

    def get_fields(self, request, obj=None):
        ticket = ("ticket_system", "ticket_number")
        if obj is None:
            return ("role", "user", "group", "scope", "starts_at", "ends_at", "justification", *ticket)
        return ("role", "user", "group", "scope", "starts_at", "ends_at", "justification", *ticket, "reason")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "role",
            "user",
            "group",
            "scope",
            "starts_at",
            "justification",
            "ticket_system",
            "ticket_number",
            "ended_at",
            "end_reason",
        )

    def assign_options(self, request) -> dict:
        """What the service needs beyond the form (the active assignment's MFA time)."""
        return {}

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            created = self.assign(
                actor=request.user,
                role=data["role"],
                principal=data.get("user") or data.get("group"),
                scope=data["scope"],
                starts_at=data.get("starts_at") or timezone.now(),
                ends_at=data.get("ends_at"),
                justification=data.get("justification", ""),
                ticket_number=data.get("ticket_number", ""),
                ticket_system=data.get("ticket_system", ""),
                **self.assign_options(request),
            )
            if self.pending_change_remember(request, created):
                return
            obj.pk = created.pk
            obj._state.adding = False
        elif "ends_at" in form.changed_data:
            original = type(obj).objects.get(pk=obj.pk)
            result = self.update(
                actor=request.user,
                assignment=original,
                ends_at=data.get("ends_at"),
                justification=data.get("reason", ""),
            )
            self.pending_change_remember(request, result)

    def delete_model(self, request, obj):
        self.remove(actor=request.user, assignment=obj, reason="Removed in the admin")

    def two_person_notice(self, request, obj) -> str:
        return SELF_ASSIGNMENT_NOTICE


@admin.register(EligibleAssignment)
class EligibleAssignmentAdmin(AssignmentAdmin):
    @staticmethod
    def assign(**kwargs):
        return services.eligible_assign(**kwargs)

    @staticmethod
    def update(**kwargs):
        return services.eligible_update(**kwargs)

    @staticmethod
    def remove(**kwargs):
        return services.eligible_remove(**kwargs)


@admin.register(ActiveAssignment)
class ActiveAssignmentAdmin(AssignmentAdmin):
    list_display = AssignmentAdmin.list_display + ("origin",)
    list_filter = ("role__tier", "origin", "end_reason")

    def assign_options(self, request) -> dict:
        # A role that requires MFA for direct active assignments: the session's step-up (the
        # admin site asks for a fresh one before any change) is that MFA check.
        return {"mfa_verified_at": step_up_verified_at(request)}

    @staticmethod
    def assign(**kwargs):
        return services.active_assign(**kwargs)

    @staticmethod
    def update(**kwargs):
        return services.active_update(**kwargs)

    @staticmethod
    def remove(**kwargs):
        return services.active_remove(**kwargs)


# --- Groups: what their members inherit ------------------------------------------------------
# accounts (below roles) knows nothing of roles: the group page gets its roles from here.


class DirectoryGroupWithRolesAdmin(DirectoryGroupAdmin):
    fields = (
        *DirectoryGroupAdmin.fields[:3],
        "roles_inherited",
        "governed_as",
        *DirectoryGroupAdmin.fields[3:],
    )
    readonly_fields = ("roles_inherited", "governed_as", *DirectoryGroupAdmin.readonly_fields)
    actions = ("govern_groups", "ungovern_groups")

    @admin.display(description="PIM for Groups")
    def governed_as(self, obj):
        """The group's member and owner roles when the portal governs it."""
        roles = list(obj.governing_roles.order_by("group_access")) if obj.pk else []
        if not roles:
            return "Not governed"
        return format_html_join(", ", "{}", ((role.name,) for role in roles))

    @admin.action(description="Govern the selected groups (PIM for Groups: member and owner roles)")
    def govern_groups(self, request, queryset):
        self._each(request, queryset, services.group_govern, "is governed")

    @admin.action(description="Stop governing the selected groups")
    def ungovern_groups(self, request, queryset):
        self._each(request, queryset, services.group_ungovern, "is no longer governed")

    def _each(self, request, queryset, service, done: str) -> None:
        for group in queryset.order_by("name"):
            try:
                service(actor=request.user, group=group)
            except (ValidationError, PermissionDenied) as error:
                text = "; ".join(getattr(error, "messages", [str(error)]))
                self.message_user(request, f"{group.name}: {text}", level=messages.ERROR)
            else:
                self.message_user(request, f"{group.name} {done}.", level=messages.SUCCESS)

    @admin.display(description="Roles its members inherit")
    def roles_inherited(self, obj):
        """The group's current and future assignments: what joining it gives."""
        if obj.pk is None:
            return "—"
        eligible, active = selectors.group_assignments(group=obj)
        rows = [
            (kind, assignment.role.name, assignment.scope)
            for kind, assignments in (("Active", active), ("Eligible", eligible))
            for assignment in assignments
        ]
        if not rows:
            return "—"
        return format_html_join("\n", "<div>{}: {} at <code>{}</code></div>", rows)


admin.site.unregister(DirectoryGroup)
admin.site.register(DirectoryGroup, DirectoryGroupWithRolesAdmin)
