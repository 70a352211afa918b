from django.contrib.auth.backends import ModelBackend


class PasswordBackend(ModelBackend):
    """Authenticates with a password and grants no permissions.

    Django's ModelBackend would also hand out user_permissions and group permissions: standing
    rights, which this product exists to remove. Permissions come only from active portal
    roles (roles.backends.PortalRoleBackend); superusers (break-glass) keep Django's bypass.
    """

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
