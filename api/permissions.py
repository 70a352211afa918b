"""Who may call what, as DRF permission classes. Permissions come from the portal roles the
caller holds right now (roles.backends.PortalRoleBackend), so they end with the role."""

from rest_framework.permissions import BasePermission


class _HasPortalPermission(BasePermission):
    perm = ""
    message = ""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(self.perm))


class CanCheckRoles(_HasPortalPermission):
    """The authorization check: PIM Role Checker (service accounts) or PIM Administrator."""

    perm = "api.check_role"
    message = "Asking who holds a role needs the PIM Role Checker role."


class CanReadAudit(_HasPortalPermission):
    """The audit log: PIM Auditors and PIM Administrators, while their role is active."""

    perm = "audit.view_auditevent"
    message = "Reading the audit log needs the PIM Auditor role, active."


class CanViewAlerts(_HasPortalPermission):
    """Security alerts: PIM Administrators and PIM Auditors, while their role is active."""

    perm = "alerts.view_alert"
    message = "Reading alerts needs the PIM Administrator or PIM Auditor role, active."
