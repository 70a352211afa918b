"""Entra's role management policy (its 17 rules) as the portal's role settings.

research/entra-pim.md §3.3 lists the rules. Mapped:
  Expiration_EndUser_Assignment      -> activation_max_duration
  Enablement_EndUser_Assignment      -> require_mfa, require_justification, require_ticket
  AuthenticationContext_EndUser_Assignment -> require_mfa and a phishing-resistant
                                        activation_authentication_strength (the portal has no
                                        Conditional Access: a passkey is the nearest equivalent)
  Approval_EndUser_Assignment        -> require_approval, approvers, approver groups,
                                        approval_timeout (the stage's timeout in days)
  Expiration_Admin_Eligibility       -> eligible_allow_permanent, eligible_max_duration
  Expiration_Admin_Assignment        -> active_allow_permanent, active_max_duration
  Enablement_Admin_Assignment        -> active_require_mfa, active_require_justification
  Notification_* (9 rules)           -> the notification matrix (roles.notification_matrix):
                                        isDefaultRecipientsEnabled -> notify_*_default,
                                        notificationRecipients -> notify_*_additional,
                                        notificationLevel Critical -> notify_*_critical_only;
                                        level None (no email at all) -> no default, no others
Enablement_Admin_Eligibility has no portal setting (Entra hides it too).
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils.dateparse import parse_duration

from roles import notification_matrix

ACTIVATION_RANGE = (timedelta(minutes=30), timedelta(hours=24))
ASSIGNMENT_RANGE = (timedelta(minutes=5), timedelta(days=3650))
APPROVAL_TIMEOUT_RANGE = (timedelta(hours=1), timedelta(days=14))


@dataclass
class PolicySettings:
    """What a policy says, in the portal's terms, and what could not be carried over."""

    changes: dict = field(default_factory=dict)
    approver_ids: set[str] = field(default_factory=set)
    approver_group_ids: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def policy_settings(rules: list[dict]) -> PolicySettings:
    result = PolicySettings()
    by_id = {rule.get("id", ""): rule for rule in rules}
    _expiration(by_id.get("Expiration_EndUser_Assignment"), result, activation=True)
    _expiration(by_id.get("Expiration_Admin_Eligibility"), result, prefix="eligible")
    _expiration(by_id.get("Expiration_Admin_Assignment"), result, prefix="active")
    enabled = _enabled_rules(by_id.get("Enablement_EndUser_Assignment"))
    if enabled is not None:
        result.changes["require_mfa"] = "multifactorauthentication" in enabled
        result.changes["require_justification"] = "justification" in enabled
        result.changes["require_ticket"] = "ticketing" in enabled
    context = by_id.get("AuthenticationContext_EndUser_Assignment")
    if context is not None:
        # An authentication context is how Entra demands a stronger method (in practice a
        # Conditional Access authentication strength such as phishing-resistant MFA): the
        # portal cannot read the Conditional Access policy, so it takes the strongest it has.
        required = bool(context.get("isEnabled"))
        result.changes["activation_authentication_strength"] = "phishing_resistant" if required else "any_mfa"
        if required:
            result.changes["require_mfa"] = True
    enabled = _enabled_rules(by_id.get("Enablement_Admin_Assignment"))
    if enabled is not None:
        result.changes["active_require_mfa"] = "multifactorauthentication" in enabled
        result.changes["active_require_justification"] = "justification" in enabled
    _approval(by_id.get("Approval_EndUser_Assignment"), result)
    for matrix_rule in notification_matrix.RULES:
        _notification(by_id.get(matrix_rule.entra_id), matrix_rule, result)
    return result


def _notification(rule, matrix_rule: notification_matrix.Rule, result: PolicySettings) -> None:
    if rule is None:
        return
    level = str(rule.get("notificationLevel") or "All").lower()
    addresses = [str(address) for address in rule.get("notificationRecipients") or [] if address]
    additional = "\n".join(notification_matrix.recipients_parse("\n".join(addresses)))
    if level == "none":
        additional = ""
    result.changes[matrix_rule.default_field] = level != "none" and bool(
        rule.get("isDefaultRecipientsEnabled", True)
    )
    result.changes[matrix_rule.additional_field] = additional
    result.changes[matrix_rule.critical_field] = level == "critical"


def _expiration(rule, result: PolicySettings, *, prefix: str = "", activation: bool = False) -> None:
    if rule is None:
        return
    raw = rule.get("maximumDuration") or ""
    duration = parse_duration(raw) if raw else None
    if activation:
        name, (low, high) = "activation_max_duration", ACTIVATION_RANGE
    else:
        name, (low, high) = f"{prefix}_max_duration", ASSIGNMENT_RANGE
        result.changes[f"{prefix}_allow_permanent"] = not rule.get("isExpirationRequired", False)
    if duration is None:
        if raw:
            result.problems.append(f"{rule['id']}: unreadable maximum duration “{raw[:40]}”")
        return
    if not low <= duration <= high:
        result.problems.append(f"{rule['id']}: {raw} is outside what the portal allows ({low} to {high})")
        return
    result.changes[name] = duration


def _enabled_rules(rule) -> set[str] | None:
    if rule is None:
        return None
    return {str(name).lower() for name in rule.get("enabledRules") or []}


def _approval(rule, result: PolicySettings) -> None:
    if rule is None:
        return
    setting = rule.get("setting") or {}
    required = bool(setting.get("isApprovalRequired"))
    result.changes["require_approval"] = required
    stages = setting.get("approvalStages") or []
    if not stages:
        return
    stage = stages[0]
    days = stage.get("approvalStageTimeOutInDays")
    if isinstance(days, int) and days > 0:
        timeout = timedelta(days=days)
        low, high = APPROVAL_TIMEOUT_RANGE
        result.changes["approval_timeout"] = min(max(timeout, low), high)
    for approver in stage.get("primaryApprovers") or []:
        kind = str(approver.get("@odata.type", "")).lower()
        if kind.endswith("singleuser") and approver.get("userId"):
            result.approver_ids.add(approver["userId"])
        elif kind.endswith("groupmembers") and approver.get("groupId"):
            result.approver_group_ids.add(approver["groupId"])
        elif required:
            result.problems.append(
                f"Approval_EndUser_Assignment: approver kind {kind or '?'} is not supported"
            )
