"""The role settings by how a change to them loosens, and how the approval page and the email
name them."""

from ..notification_matrix import ADDITIONAL_FIELDS, CRITICAL_FIELDS, DEFAULT_FIELDS, RULES

LONGER = ("activation_max_duration", "approval_timeout", "eligible_max_duration", "active_max_duration")
TURNED_OFF = (
    "require_mfa",
    "require_justification",
    "require_ticket",
    "require_approval",
    "active_require_mfa",
    "active_require_justification",
    *DEFAULT_FIELDS,  # a notification's default recipients turned off
)
# Allowing permanent assignments; and a notification restricted to critical emails (fewer sent).
ALLOWED = ("eligible_allow_permanent", "active_allow_permanent", *CRITICAL_FIELDS)
# Loosened when phishing-resistant becomes any MFA.
WEAKER = ("activation_authentication_strength", "approval_authentication_strength")
STRONGEST = "phishing_resistant"
# Address lists: removing an address loosens (someone is no longer told).
RECIPIENTS = ADDITIONAL_FIELDS
# Every role setting, by how it loosens (a test keeps this equal to services.SETTINGS_FIELDS, so
# a new setting cannot be added without saying which way is looser).
POLICY_FIELDS = (*LONGER, *TURNED_OFF, *ALLOWED, *WEAKER, "approvals_required", *RECIPIENTS)
# How the approval page and the email name each setting.
LABELS = {
    "activation_max_duration": "Activation maximum duration",
    "require_mfa": "Require MFA on activation",
    "activation_authentication_strength": "Authentication strength to activate",
    "approval_authentication_strength": "Authentication strength to approve",
    "require_justification": "Require a justification on activation",
    "require_ticket": "Require a ticket on activation",
    "require_approval": "Require approval to activate",
    "approvals_required": "Approvals required",
    "approval_timeout": "Approval timeout",
    "eligible_allow_permanent": "Allow permanent eligible assignments",
    "eligible_max_duration": "Eligible assignments last at most",
    "active_allow_permanent": "Allow permanent active assignments",
    "active_max_duration": "Active assignments last at most",
    "active_require_mfa": "Require MFA for direct active assignments",
    "active_require_justification": "Require a justification for direct active assignments",
    **{rule.default_field: f"{rule.label}: default recipients" for rule in RULES},
    **{rule.additional_field: f"{rule.label}: additional recipients" for rule in RULES},
    **{rule.critical_field: f"{rule.label}: critical emails only" for rule in RULES},
}
# Only matter while approval is required (turning approval on is a tightening, whatever they are).
APPROVAL_ONLY = ("approvals_required", "approval_timeout", "approvers")
