"""Reads of the Entra integration's records."""

from django.db.models import QuerySet

from .models import DriftFinding, SyncRun


def open_drift_findings() -> QuerySet[DriftFinding]:
    """Active assignments in Entra that the portal did not make and that are still there
    (for the alert "roles assigned outside the portal"), oldest first."""
    return (
        DriftFinding.objects.filter(resolved_at__isnull=True)
        .select_related("role", "user", "group")
        .order_by("first_seen_at", "pk")
    )


def sync_run_last() -> SyncRun | None:
    return SyncRun.objects.order_by("-started_at").first()
