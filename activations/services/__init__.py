"""Activation requests: one service per transition (SPEC 2.3, 2.4), by sub-domain: asking
(requests), extension and renewal of eligibilities (eligibility_changes), deciding
(decisions), ending (lifecycle), and what every transition shares (transitions). Import them
from here.

Each locks the request, re-checks the live state (status, eligibility, policy, who is acting),
moves it along ActivationRequest.TRANSITIONS, writes one audit event and queues the emails,
all in one transaction.
"""

from .decisions import (
    activation_approve,
    activation_approvers_refresh,
    activation_decider_check,
    activation_decision_check,
    activation_deny,
)
from .eligibility_changes import EXTEND_WINDOW, RENEW_WINDOW, extension_request, renewal_request
from .lifecycle import (
    activation_cancel,
    activation_close_for_ended_assignment,
    activation_deactivate,
    activation_requests_cancel_for_user,
    activation_revoke,
)
from .requests import MAX_SCHEDULE_AHEAD, activation_request
from .transitions import ActivationError, request_approvers

__all__ = [
    "ActivationError",
    "EXTEND_WINDOW",
    "MAX_SCHEDULE_AHEAD",
    "RENEW_WINDOW",
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
    "activation_revoke",
    "extension_request",
    "renewal_request",
    "request_approvers",
]
