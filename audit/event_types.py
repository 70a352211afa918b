"""Every kind of audit event the portal writes (the `action` of an AuditEvent), by namespace.

Webhook subscriptions (integrations) choose from this list, so a SIEM can subscribe to any of
them and a typo is refused rather than silently matching nothing. A service that writes a new
action adds it here: tests/test_event_types.py finds every literal action in the code and fails
on one that is missing."""

_REQUEST_ACTIONS = (
    "requested",
    "approved",
    "denied",
    "canceled",
    "timed_out",
    "approvers_added",
    "decision_refused",
    "self_approval_refused",
)
_ASSIGNMENT_ACTIONS = ("created", "updated", "extended", "renewed", "removed", "expired", "kept")

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "activation": (*_REQUEST_ACTIONS, "granted", "deactivated", "revoked", "expired"),
    "extend": _REQUEST_ACTIONS,
    "renew": _REQUEST_ACTIONS,
    "eligible_assignment": _ASSIGNMENT_ACTIONS,
    "active_assignment": (*_ASSIGNMENT_ACTIONS, "revoked", "ended"),
    # A grant or revoke of an active assignment, or an eligibility written back: accepted
    # (confirmed) or refused (failed) by the directory; then in force as the portal has it, or
    # gone (effective), or never shown (unconfirmed).
    "directory": tuple(
        f"{operation}_{outcome}"
        for operation in (
            "grant",
            "revoke",
            "eligible_assign",
            "eligible_update",
            "eligible_extend",
            "eligible_renew",
            "eligible_remove",
        )
        for outcome in ("confirmed", "failed", "effective", "unconfirmed")
    ),
    "role": ("created", "changed", "owner_added", "owner_removed"),
    "role_settings": ("changed",),
    "pending_change": (
        "proposed",
        "approved",
        "rejected",
        "canceled",
        "expired",
        "self_approval_refused",
        "decision_refused",
    ),
    "user": (
        "created",
        "changed",
        "deactivated",
        "reactivated",
        "invited",
        "invitation_accepted",
        "time_zone_changed",
    ),
    "group": ("created", "changed", "member_added", "member_removed", "governed", "ungoverned"),
    "auth": (
        "sign_in",
        "sign_in_failed",
        "break_glass_sign_in",
        "break_glass_request",
        "locked_out",
        "sso_refused",
    ),
    "sso": ("linked",),
    "mfa": (
        "enrolled",
        "verified",
        "failed",
        "device_removed",
        "recovery_codes_regenerated",
        "passkey_enrolled",
        "passkey_removed",
        "reset",
    ),
    "api_token": ("created", "revoked"),
    "api": ("step_up_opened",),
    "review_definition": ("created", "changed"),
    "review": (
        "started",
        "decided",
        "decision_reset",
        "recommendation_accepted",
        "closed",
        "applied",
        "ended_early",
        "report_exported",
        "report_emailed",
        "history_exported",
    ),
    "alert": ("raised", "resolved", "dismissed"),
    "admin": ("permission_denied",),
    "audit": ("exported", "chain_head_restored", "refusals_suppressed"),
    "entra": (
        "connection_tested",
        "drift_detected",
        "drift_removed",
        "drift_resolved",
        "eligibility_linked",
        "group_linked",
        "user_linked",
    ),
    "webhook": (
        "subscription_created",
        "subscription_changed",
        "subscription_paused",
        "subscription_resumed",
        "subscription_deleted",
        "replayed",
    ),
}

ALL_EVENT_TYPES: frozenset[str] = frozenset(
    f"{namespace}.{name}" for namespace, names in EVENT_TYPES.items() for name in names
)


def event_type_problem(pattern: str) -> str | None:
    """Why a subscription's event type is not one the portal writes, or None. Accepted: an
    exact action (`activation.granted`), a whole namespace (`activation.*`), or `*` (all)."""
    if pattern == "*" or pattern in ALL_EVENT_TYPES:
        return None
    if pattern.endswith(".*") and pattern[:-2] in EVENT_TYPES:
        return None
    return (
        f"Unknown event type “{pattern[:80]}”: use an audit action such as activation.granted, "
        "a namespace such as activation.*, or *."
    )


def event_type_matches(patterns: list[str], action: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == action:
            return True
        if pattern.endswith(".*") and action.startswith(pattern[:-1]):
            return True
    return False
