"""The Django admin, governed like everything else: only for people who are OTP-verified and
hold a portal role (PIM Administrator, PIM Auditor) right now, or the break-glass superuser."""

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.mfa import user_is_verified

NO_ADMIN_RIGHTS_MESSAGE = (
    "The administration pages are for PIM Administrators and Auditors: activate your role first."
)


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
        if request.user.is_authenticated and user_is_verified(request.user):
            # Signed in and verified, yet no admin rights (no portal role active): the sign-in
            # page would send them straight back here, round and round.
            messages.error(request, NO_ADMIN_RIGHTS_MESSAGE)
            return redirect("activations:my_roles")
        target = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': target})}")
