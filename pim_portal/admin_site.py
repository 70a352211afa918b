"""The Django admin, governed like everything else: only for people who are OTP-verified and
hold a portal role (PIM Administrator, PIM Auditor) right now, or the break-glass superuser.

Every change made here (any POST but signing out) needs a fresh step-up, as the portal's own
administrative actions do: a session whose last code check is older than PIM_STEP_UP_WINDOW is
sent to confirm a code first and comes back to the page, with nothing changed. The add and
delete pages, which exist only to change something, ask for it before they are shown."""

from functools import wraps

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from common.decorators import STEP_UP_MESSAGE
from common.redirects import with_next
from common.step_up import step_up_is_fresh, user_is_verified

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

    def admin_view(self, view, cacheable=False):
        guarded = super().admin_view(view, cacheable)
        if view.__name__ == "logout":
            return guarded  # signing out never needs a code

        @wraps(view)
        def step_up_first(request, *args, **kwargs):
            if self.has_permission(request) and self._changes(request) and not step_up_is_fresh(request):
                messages.info(request, STEP_UP_MESSAGE)
                here = request.get_full_path() if request.method in ("GET", "HEAD") else request.path
                return redirect(with_next(reverse("accounts:verify"), here))
            return guarded(request, *args, **kwargs)

        return step_up_first

    @staticmethod
    def _changes(request) -> bool:
        """A request that changes something, or opens a page that exists only to do so."""
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            return True
        name = request.resolver_match.url_name if request.resolver_match else ""
        return bool(name) and name.endswith(("_add", "_delete"))
