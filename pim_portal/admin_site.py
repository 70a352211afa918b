"""The Django admin, governed like everything else: only for people who are OTP-verified and
hold a portal role (PIM Administrator, PIM Auditor) right now, or the break-glass superuser."""

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode


class PortalAdminSite(admin.AdminSite):
    site_header = "PIM Portal administration"
    site_title = "PIM Portal admin"
    index_title = "Catalog, settings and assignments"

    def has_permission(self, request):
        user = request.user
        if not (user.is_active and user.is_authenticated and user.is_verified()):
            return False
        return user.is_superuser or any(user.has_module_perms(app) for app in ("roles", "accounts", "audit"))

    def login(self, request, extra_context=None):
        # One sign-in door (password + TOTP) for the whole portal.
        target = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': target})}")
