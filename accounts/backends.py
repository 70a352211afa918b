from django.conf import settings
from django.contrib.auth.backends import ModelBackend


class NoStandingPermissions:
    """Django's ModelBackend would also hand out user_permissions and group permissions: standing
    rights, which this product exists to remove. Permissions come only from active portal
    roles (roles.backends.PortalRoleBackend); superusers (break-glass) keep Django's bypass."""

    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def get_all_permissions(self, user_obj, obj=None):
        return set()

    def has_perm(self, user_obj, perm, obj=None):
        return False

    def has_module_perms(self, user_obj, app_label):
        return False


class PasswordBackend(NoStandingPermissions, ModelBackend):
    """Authenticates with a password (as PIM_PASSWORD_LOGIN allows) and grants no permissions."""

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and password_login_allowed(user)


def password_login_allowed(user) -> bool:
    """PIM_PASSWORD_LOGIN: "on" for everyone, "break-glass-only" for superusers, "off" for nobody.

    Also checked for every request of a password session, so turning passwords off ends them."""
    mode = password_login_mode()
    return mode == "on" or (mode == "break-glass-only" and bool(getattr(user, "is_superuser", False)))


def password_login_mode() -> str:
    """PIM_PASSWORD_LOGIN: "on", "break-glass-only" or "off"."""
    return str(settings.PIM_PASSWORD_LOGIN)
