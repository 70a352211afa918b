"""Services that change roles, role settings and assignments, by sub-domain: the catalog
(catalog), role settings (role_settings), eligible assignments (eligible), active assignments
(active) and what assignments share (assignments). Import them from here.

Every public function is one audited state change: it checks who is acting, locks the rows it
changes, re-checks the live state and the role's policy, changes it and writes its audit
event, all in one transaction. Views, the admin, the API, tasks and commands call these.

The lock order. Every service that touches a person's assignments, an eligibility, its active
assignments and the requests behind them (here, in activations.services, and in the
accounts, reviews and alerts services that call them) takes its row locks in this order:

    DirectoryGroup (a person's groups) → User (the person) → Role → RoleSettings
    → PendingChange → EligibleAssignment → ActiveAssignment → ActivationRequest
    → the audit chain head

so two transitions that meet wait for each other instead of deadlocking. A service may skip
a step, never go back up one:

- the audit chain head (one row, every audit event) comes last: a service writes its audit
  events after its last row lock;
- ending an active assignment locks the requests behind it first, through the
  active_assignments_ending signal (roles never sees activations): see lock_dependents,
  which active_assignments_end also calls, and eligible_remove, which locks the eligibility,
  then its live activations, then their requests;
- several rows of one model are locked in primary-key order; select_for_update(of=("self",))
  when the query joins (a join would lock the role or the person too);
- people are locked FOR NO KEY UPDATE (accounts.services): audit events and assignments hold
  a foreign-key share lock on their person, which FOR UPDATE would wait for;
- the apps above (reviews, alerts) lock their own rows first, then call these.

A transition that loses a race refuses with the state it finds ("This assignment has already
ended."); a deadlock or serialization failure that still happens is retried once
(common.db.retry_on_deadlock, on the public services that take these locks). One such cycle
is known: a deactivated account's pending requests are canceled after its assignments' audit
events (accounts' user_deactivated), so the timeout job claiming one of them at that moment
can meet it: the deactivation is retried, or the job's batch waits for its next run.
"""

from .active import (
    active_assign,
    active_assignment_create_for_activation,
    active_assignment_end,
    active_assignments_end,
    active_assignments_expired_record,
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
from .groups import group_govern, group_role_name, group_ungovern
from .lockout import LOCKOUT_KEEP_AHEAD, lockout_holders_keep
from .role_settings import (
    SETTINGS_FIELDS,
    role_approver_candidates,
    role_approvers_explained,
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
    "active_assignments_expired_record",
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
    "group_govern",
    "group_role_name",
    "group_ungovern",
    "lockout_holders_keep",
    "role_approver_candidates",
    "role_approvers_explained",
    "role_create",
    "role_owner_add",
    "role_owner_remove",
    "role_settings_update",
    "role_settings_validate",
    "role_update",
]
