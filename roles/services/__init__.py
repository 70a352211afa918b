"""Services that change roles, role settings and assignments, by sub-domain: the catalog
(catalog), role settings (role_settings), eligible assignments (eligible), active assignments
(active) and what assignments share (assignments). Import them from here.

Every public function is one audited state change: it checks who is acting, locks the rows it
changes, re-checks the live state and the role's policy, changes it and writes its audit
event, all in one transaction. Views, the admin, the API, tasks and commands call these.
"""

from .active import (
    active_assign,
    active_assignment_create_for_activation,
    active_assignment_end,
    active_assignments_end,
    active_assignments_revoke_for_user,
    active_extend,
    active_remove,
    active_renew,
    active_update,
    assignments_end_for_group_leaver,
)
from .assignments import LockoutError, Principal
from .catalog import OWNER_PERMISSIONS, role_create, role_owner_add, role_owner_remove, role_update
from .eligible import (
    eligible_assign,
    eligible_assignments_expire,
    eligible_extend,
    eligible_remove,
    eligible_renew,
    eligible_update,
)
from .lockout import LOCKOUT_KEEP_AHEAD, lockout_holders_keep
from .role_settings import (
    SETTINGS_FIELDS,
    role_approver_candidates,
    role_settings_update,
    role_settings_validate,
)

__all__ = [
    "LOCKOUT_KEEP_AHEAD",
    "LockoutError",
    "OWNER_PERMISSIONS",
    "Principal",
    "SETTINGS_FIELDS",
    "active_assign",
    "active_assignment_create_for_activation",
    "active_assignment_end",
    "active_assignments_end",
    "active_assignments_revoke_for_user",
    "active_extend",
    "active_remove",
    "active_renew",
    "active_update",
    "assignments_end_for_group_leaver",
    "eligible_assign",
    "eligible_assignments_expire",
    "eligible_extend",
    "eligible_remove",
    "eligible_renew",
    "eligible_update",
    "lockout_holders_keep",
    "role_approver_candidates",
    "role_create",
    "role_owner_add",
    "role_owner_remove",
    "role_settings_update",
    "role_settings_validate",
    "role_update",
]
