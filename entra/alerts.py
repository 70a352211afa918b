"""What the Entra sync tells the alerts: the privileged role assignments it found in Entra that
the portal did not make (the alert "Roles are being assigned outside of the portal").

Registered with alerts.rules in EntraConfig.ready(): the alerts app does not import entra.
"""

from .selectors import open_drift_findings


def drift_items() -> list[dict]:
    """The open drift findings as the alert's items, oldest first."""
    items = []
    for finding in open_drift_findings():
        role = finding.role.name if finding.role else finding.role_template_id
        principal = (
            finding.user.label
            if finding.user
            else finding.group.label
            if finding.group
            else finding.principal_id
        )
        items.append(
            {
                "type": "drift_finding",
                "id": str(finding.pk),
                "label": (
                    f"{role} — {principal} at {finding.directory_scope} "
                    f"(seen {finding.first_seen_at:%Y-%m-%d})"
                ),
            }
        )
    return items
