"""The Django admin and the two-person rule: editors say when it applies, a save that the rule
holds back is reported as a pending change (not as a change made), and the pending changes are
listed read-only (deciding happens on the portal's approval page, with a fresh MFA check)."""

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from ..models import PendingChange
from .rules import two_person_rule_on
from .selectors import pending_changes_open

PENDING_MESSAGE = "Saved as a pending change: a second PIM Administrator must approve it."
SELF_ASSIGNMENT_NOTICE = (
    "An assignment for yourself, or for a group you are a member of (a new one, or a later or no "
    "end for an existing one), is saved as a pending change that a second PIM Administrator must "
    "approve; assignments for others, and shortening, apply at once."
)


if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]  # the mixin goes before a ModelAdmin
else:
    _ModelAdmin = object


class TwoPersonAdminMixin(_ModelAdmin):
    """For model admins whose saves may come back from the service as a PendingChange."""

    change_form_template = "admin/roles/two_person_change_form.html"

    def two_person_notice(self, request, obj) -> str:
        return ""

    def two_person_role(self, obj):
        return None

    def pending_change_remember(self, request, result) -> bool:
        """Call with what the service returned; True if it is a pending change."""
        if isinstance(result, PendingChange):
            request.pim_pending_change = result
            return True
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if two_person_rule_on():
            context["two_person_notice"] = self.two_person_notice(request, obj)
            role = self.two_person_role(obj)
            if role is not None:
                context["pending_changes"] = list(pending_changes_open(role=role).select_related("proposer"))
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def log_addition(self, request, obj, message):
        if getattr(request, "pim_pending_change", None) is None:
            return super().log_addition(request, obj, message)
        return None  # nothing was added yet (the audit log has pending_change.proposed)

    def log_change(self, request, obj, message):
        if getattr(request, "pim_pending_change", None) is None:
            return super().log_change(request, obj, message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        change = getattr(request, "pim_pending_change", None)
        if change is None:
            return super().response_add(request, obj, post_url_continue)
        self._pending_message(request, change)
        opts = self.opts
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    def response_change(self, request, obj):
        change = getattr(request, "pim_pending_change", None)
        if change is None:
            return super().response_change(request, obj)
        self._pending_message(request, change)
        return HttpResponseRedirect(request.path)

    def _pending_message(self, request, change: PendingChange) -> None:
        self.message_user(
            request,
            format_html(
                '{} <a href="{}">See the pending change</a>.', PENDING_MESSAGE, change.get_absolute_url()
            ),
            level=messages.WARNING,
        )


class PendingChangeAdmin(admin.ModelAdmin):
    """Read-only: pending changes are decided on the portal's approval page (fresh MFA, never
    by the proposer); here they are listed for PIM Administrators, from the admin index."""

    actions = None
    list_display = (
        "kind",
        "role",
        "proposer",
        "status",
        "created_at",
        "decide_by",
        "decided_by",
        "open_link",
    )
    list_filter = ("status", "kind")
    search_fields = ("role__name", "proposer__username", "proposer__display_name")
    list_select_related = ("role", "proposer", "decided_by")
    fields = (
        "kind",
        "role",
        "proposer",
        "status",
        "created_at",
        "decide_by",
        "decided_by",
        "decided_at",
        "reason",
        "payload",
        "before",
        "open_link",
    )
    readonly_fields = fields

    @admin.display(description="Approval page")
    def open_link(self, obj):
        return format_html('<a href="{}">Review</a>', obj.get_absolute_url())

    def has_module_permission(self, request):
        return request.user.has_perm("roles.change_rolesettings")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("roles.change_rolesettings")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
