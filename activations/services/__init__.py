"""Activation requests: one service per transition (SPEC 2.3, 2.4), by sub-domain: asking
(requests), extension and renewal of eligibilities (eligibility_changes), deciding
(decisions), ending (lifecycle), and what every transition shares (transitions). Import them
from here.

Each locks the request, re-checks the live state (status, eligibility, policy, who is acting),
moves it along ActivationRequest.TRANSITIONS, writes one audit event and queues the emails,
all in one transaction.

The lock order is the one in roles.services:

    User (the requester) → RoleSettings → EligibleAssignment → ActiveAssignment
    → ActivationRequest → the audit chain head

- asking (activation, extension, renewal) locks the requester, then the eligibility; an
  activation closes lapsed ones by locking their assignments, then their requests;
- deciding and canceling lock the requester, then (deciding) the role's settings and the
  eligibility, then the request (transitions._lock_basis);
- deactivating and revoking lock the activation's assignment, then the request (as roles does
  when it ends the assignment: eligible_remove, active_remove, a deactivated account);
- the jobs claim with SKIP LOCKED, which never waits (activation_expire_due locks each due
  request with its assignment in one claim and skips a pair either of which is taken).

A transition that loses a race is refused with the state it finds: TransitionNotAllowed, or
ActivationConflict ("already active", "already ended"), both 409 in the API. A deadlock or a
serialization failure that still happens is retried once (common.db.retry_on_deadlock).
"""

from .bulk import (
    MAX_BULK_ITEMS,
    ActivationChoice,
    DecisionsConflict,
    Outcome,
    activations_decide_all,
    activations_decide_check,
    activations_decide_each,
    activations_request_many,
)
from .decisions import (
    activation_approve,
    activation_approvers_refresh,
    activation_decider_check,
    activation_decision_check,
    activation_deny,
)
from .eligibility_changes import (
    EXTEND_WINDOW,
    RENEW_WINDOW,
    active_extension_request,
    active_renewal_request,
    extension_request,
    renewal_request,
)
from .lifecycle import (
    activation_cancel,
    activation_close_for_ended_assignment,
    activation_deactivate,
    activation_requests_cancel_for_user,
    activation_requests_lock_for_assignments,
    activation_revoke,
)
from .requests import MAX_SCHEDULE_AHEAD, activation_request
from .transitions import ActivationConflict, ActivationError, request_approvers

__all__ = [
    "MAX_BULK_ITEMS",
    "ActivationChoice",
    "DecisionsConflict",
    "Outcome",
    "activations_decide_all",
    "activations_decide_check",
    "activations_decide_each",
    "activations_request_many",
    "ActivationConflict",
    "ActivationError",
    "EXTEND_WINDOW",
    "MAX_SCHEDULE_AHEAD",
    "RENEW_WINDOW",
    "active_extension_request",
    "active_renewal_request",
    "activation_approve",
    "activation_approvers_refresh",
    "activation_cancel",
    "activation_close_for_ended_assignment",
    "activation_deactivate",
    "activation_decider_check",
    "activation_decision_check",
    "activation_deny",
    "activation_request",
    "activation_requests_cancel_for_user",
    "activation_requests_lock_for_assignments",
    "activation_revoke",
    "extension_request",
    "renewal_request",
    "request_approvers",
]
