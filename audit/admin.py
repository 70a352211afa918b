"""The audit log in the Django admin: read only, for whoever holds audit.view_auditevent."""

import json

from django.contrib import admin
from django.utils.html import format_html

from .models import AuditEvent

# The chain head (AuditChainHead) is deliberately not registered: nobody edits it by hand.


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "actor_label",
        "action",
        "outcome",
        "target_label",
        "role_label",
        "scope",
    )
    list_filter = ("action", "outcome")
    search_fields = ("actor_label", "target_label", "=request_id")
    ordering = ("-seq",)
    actions = None
    show_full_result_count = False  # one COUNT per page, not two, on a log of millions
    fields = (
        "seq",
        "occurred_at",
        "actor",
        "actor_label",
        "action",
        "outcome",
        "target_type",
        "target_id",
        "target_label",
        "role_id",
        "role_label",
        "scope",
        "details_pretty",
        "request_id",
        "ip",
        "user_agent",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        # Only the view permission: Django would also let change_auditevent in.
        return request.user.has_perm("audit.view_auditevent")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="details")
    def details_pretty(self, obj):
        text = json.dumps(obj.details, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)
