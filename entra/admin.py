"""The Entra sync in the Django admin: its runs and drift findings (read only: the sync writes
them), and a "Test connection" page for those who hold entra.test_connection."""

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from .models import DriftFinding, SyncRun
from .services import entra_connection_test


class ReadOnlyAdmin(admin.ModelAdmin):
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return self.fields or ()


def _pretty(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "finished_at", "status", "trigger", "summary", "error_count")
    list_filter = ("status", "trigger")
    fields = ("started_at", "finished_at", "status", "trigger", "counts_pretty", "errors_pretty")
    change_list_template = "entra/admin/syncrun_change_list.html"

    @admin.display(description="counts")
    def counts_pretty(self, obj):
        return _pretty(obj.counts)

    @admin.display(description="errors")
    def errors_pretty(self, obj):
        return _pretty(obj.errors)

    @admin.display(description="changes")
    def summary(self, obj):
        changed = ("created", "updated", "linked", "added", "removed", "deactivated", "detected")
        parts = [
            f"{kind} {outcome} {number}"
            for kind, counts in sorted(obj.counts.items())
            for outcome, number in sorted(counts.items())
            if outcome in changed and number
        ]
        return ", ".join(parts) or "none"

    @admin.display(description="errors")
    def error_count(self, obj):
        return obj.error_count

    def get_urls(self):
        view = self.admin_site.admin_view(self.test_connection_view)
        return [path("test-connection/", view, name="entra_test_connection"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_test_connection": request.user.has_perm("entra.test_connection")}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def test_connection_view(self, request):
        if not request.user.has_perm("entra.test_connection"):
            raise PermissionDenied
        result = entra_connection_test(actor=request.user) if request.method == "POST" else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Test the connection to Microsoft Entra ID",
            "opts": self.model._meta,
            "result": result,
        }
        return TemplateResponse(request, "entra/admin/test_connection.html", context)


@admin.register(DriftFinding)
class DriftFindingAdmin(ReadOnlyAdmin):
    list_display = (
        "role_label",
        "principal_label",
        "principal_type",
        "directory_scope",
        "source",
        "assignment_type",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "resolution",
    )
    list_filter = ("resolution", "source", "principal_type", "assignment_type")
    list_select_related = ("role", "user", "group")
    search_fields = ("principal_id", "role_template_id", "user__username", "group__name")
    fields = (
        "principal_id",
        "principal_type",
        "user",
        "group",
        "role",
        "role_template_id",
        "directory_scope",
        "source",
        "assignment_id",
        "assignment_type",
        "entra_starts_at",
        "entra_ends_at",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "resolution",
    )
