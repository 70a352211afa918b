"""The Django admin, governed like everything else: only for people who are OTP-verified and
hold a portal role (PIM Administrator, PIM Auditor) right now, or the break-glass superuser."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
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
            return redirect("roles:my_roles")
        target = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': target})}")


class ServiceBackedAdmin(admin.ModelAdmin):
    """Turns service refusals into admin error messages (and no change)."""

    actions = None  # no bulk delete: removals go one by one through the services

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            return self._refused(request, error)
        except PermissionDenied as error:
            if not self._admin_allows(request, object_id, self.has_change_permission):
                raise  # the admin's own check (e.g. an auditor posting): 403
            return self._refused(request, error)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as error:
            return self._refused(request, error)
        except PermissionDenied as error:
            if not self._admin_allows(request, object_id, self.has_delete_permission):
                raise
            return self._refused(request, error)

    def _admin_allows(self, request, object_id, check) -> bool:
        """Whether the admin's own permission check lets the request through (so a
        PermissionDenied came from a service and is a refusal to show, not a 403)."""
        if object_id is None:
            return self.has_add_permission(request)
        return check(request, self.get_object(request, unquote(object_id)))

    def _refused(self, request, error):
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        self.message_user(request, f"Refused: {text}", level=messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def save_related(self, request, form, formsets, change):
        """Relations are saved by the services."""
