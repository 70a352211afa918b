"""Permissions from the portal's own roles (dogfooding, SPEC 2.8)."""

from django.utils import timezone

from .selectors import permissions_from_active_roles

# Within one request the answer is cached on the user object; a request is short, so the
# role's end is still honoured to the request.
_CACHE_ATTR = "_pim_role_permissions"


class PortalRoleBackend:
    """Grants the Django permissions behind each portal role only while the role is active.

    No authentication of its own. Object-level checks fall back to the global answer: a PIM
    Administrator manages every role; role owners get object rights from django-guardian.
    """

    def authenticate(self, request, **credentials):
        return None

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous:
            return set()
        cached = getattr(user_obj, _CACHE_ATTR, None)
        if cached is None:
            cached = permissions_from_active_roles(user=user_obj, at=timezone.now())
            setattr(user_obj, _CACHE_ATTR, cached)
        return cached

    def has_perm(self, user_obj, perm, obj=None):
        return perm in self.get_all_permissions(user_obj)

    def has_module_perms(self, user_obj, app_label):
        return any(perm.startswith(f"{app_label}.") for perm in self.get_all_permissions(user_obj))


def forget_cached_permissions(user) -> None:
    """Drop the per-request cache (after the user's roles changed within the request)."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)
