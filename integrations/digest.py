"""The optional weekly digest for PIM Administrators (PIM_WEEKLY_DIGEST): activations per role
in the last seven days, requests waiting for approval, open alerts and assignments ending in
the next fourteen days. Sent once per ISO week (a DigestRun row claims it)."""

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from activations.models import ActivationRequest
from alerts.models import Alert
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment
from roles.selectors import pim_administrators

from .models import DigestRun

WEEK = timedelta(days=7)
UPCOMING = timedelta(days=14)
LIST_LIMIT = 50


def weekly_digest_context(*, now: datetime) -> dict[str, Any]:
    since = now - WEEK
    activations = (
        ActivationRequest.objects.filter(
            kind=ActivationRequest.Kind.ACTIVATE, granted_at__gte=since, granted_at__lte=now
        )
        .values("role__name")
        .annotate(count=Count("pk"))
        .order_by("-count", "role__name")
    )
    pending = (
        ActivationRequest.objects.filter(status=ActivationRequest.Status.PENDING_APPROVAL, decide_by__gt=now)
        .select_related("role", "requester")
        .order_by("decide_by")
    )
    alerts = Alert.objects.filter(status=Alert.Status.OPEN).order_by("severity", "-first_raised_at")
    ending = Q(ended_at__isnull=True, ends_at__gt=now, ends_at__lte=now + UPCOMING)
    expiring = [
        *[
            ("eligible", a)
            for a in EligibleAssignment.objects.filter(ending).select_related("role", "user", "group")[
                :LIST_LIMIT
            ]
        ],
        *[
            ("active", a)
            for a in ActiveAssignment.objects.filter(
                ending, origin=ActiveAssignment.Origin.DIRECT
            ).select_related("role", "user", "group")[:LIST_LIMIT]
        ],
    ]
    expiring.sort(key=lambda pair: pair[1].ends_at or now)  # all have an end (the filter)
    return {
        "since": since,
        "now": now,
        "activations": list(activations[:LIST_LIMIT]),
        "activation_total": sum(row["count"] for row in activations),
        "pending": list(pending[:LIST_LIMIT]),
        "pending_total": pending.count(),
        "alerts": list(alerts[:LIST_LIMIT]),
        "alert_total": alerts.count(),
        "expiring": expiring[:LIST_LIMIT],
    }


def weekly_digest_send(*, now: datetime | None = None) -> int:
    """Queue this week's digest to every PIM Administrator, once; returns the emails queued."""
    now = now or timezone.now()
    year, week, _ = now.isocalendar()
    try:
        with transaction.atomic():
            DigestRun.objects.create(week=f"{year}-W{week:02d}", sent_at=now)
            emails = email_queue(
                recipients=list(pim_administrators(at=now).order_by("pk")),
                template="weekly-digest",
                context=weekly_digest_context(now=now),
                now=now,
            )
    except IntegrityError:
        return 0  # already sent this week
    return len(emails)
