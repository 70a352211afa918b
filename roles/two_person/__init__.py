"""The two-person rule: what needs a second PIM Administrator, and the services that propose,
approve, reject, cancel and expire a pending change (roles.models.PendingChange).

What waits, when settings.PIM_TWO_PERSON_RULE is on and a person (not the system) acts:

- an eligible or direct active assignment for oneself, or for a group one is a member of
  (eligible_assign, active_assign), whatever the role, and a later (or no) end for one
  (eligible_update, active_update: the admin's change page); shortening applies at once;
- loosening the settings of a privileged role (role_settings_update): a longer activation,
  eligible or active maximum duration or approval timeout; MFA, justification, ticket or
  approval turned off; permanent eligible or active assignments allowed; fewer approvals
  required; someone who could not approve activations before could now (approvers added, or
  the fallback widened) while approval is required; a notification recipient removed. A change
  that loosens anything waits as a whole, even if it also tightens something else; a change
  that only tightens applies at once;
- un-marking a role as privileged (role_update), which would take its settings out of the rule.

The services in roles.services call the *_intercept functions (rules) before they change
anything; each returns the PendingChange it stored (the caller gets it instead of the changed
object) or None to carry on. On approval the same service applies the change, with
approved_change set so that it does not wait again and with the approver as the actor (their
rights and the role's policy are checked as they are then); its audit event names both people.

Lock order: the row the change applies to (the role's settings, or the role), then the pending
change. Proposals hold that row when they store the change; decisions take it first.

By sub-domain: what waits (rules), proposing (proposals), deciding (decisions), what the change
says (display), the settings by how they loosen (fields) and the JSON it is stored as (payload);
the reads (selectors) and the Django admin's part (admin). Import the public names from here.
"""

from .decisions import (
    BENEFICIARY_MESSAGE,
    EXPIRE_BATCH,
    NOT_ADMIN_MESSAGE,
    SELF_APPROVAL_MESSAGE,
    already_decided_message,
    approval_details,
    pending_change_approve,
    pending_change_cancel,
    pending_change_decider_check,
    pending_change_expire_due,
    pending_change_reject,
)
from .display import pending_change_rows
from .fields import ALLOWED, APPROVAL_ONLY, LABELS, LONGER, POLICY_FIELDS, TURNED_OFF
from .proposals import change_beneficiary_ids, pending_change_deciders
from .rules import (
    role_change_intercept,
    self_extension_intercept,
    self_grant_intercept,
    settings_change_intercept,
    settings_loosened,
    two_person_rule_on,
)

__all__ = [
    "ALLOWED",
    "APPROVAL_ONLY",
    "BENEFICIARY_MESSAGE",
    "EXPIRE_BATCH",
    "LABELS",
    "LONGER",
    "NOT_ADMIN_MESSAGE",
    "POLICY_FIELDS",
    "SELF_APPROVAL_MESSAGE",
    "TURNED_OFF",
    "already_decided_message",
    "approval_details",
    "change_beneficiary_ids",
    "pending_change_approve",
    "pending_change_cancel",
    "pending_change_decider_check",
    "pending_change_deciders",
    "pending_change_expire_due",
    "pending_change_reject",
    "pending_change_rows",
    "role_change_intercept",
    "self_extension_intercept",
    "self_grant_intercept",
    "settings_change_intercept",
    "settings_loosened",
    "two_person_rule_on",
]
