"""Alert services: evaluate the rules, dismiss an alert, apply a one-click fix.

The evaluation is idempotent: it compares what the rules find with the live alerts (locked),
raises what is new, updates what persists, resolves what is gone, and writes an audit event
only for those changes. New high-severity alerts email the security admins once, after commit.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from audit.refusals import audit_permission_denied
from audit.services import AuditEntry, audit_record, audit_record_many
from common.text import clean_text
from notifications.services import email_queue
from roles.selectors import pim_administrators

from .fixes import FIXES
from .models import Alert, RuleEvaluation
from .rules import KINDS, Finding

MANAGE_PERMISSION = "alerts.manage_alert"
VIEW_PERMISSION = "alerts.view_alert"


@dataclass
class Evaluation:
    """What one evaluation changed."""

    raised: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    updated: int = 0

    def __str__(self) -> str:
        return f"{len(self.raised)} raised, {len(self.resolved)} resolved, {self.updated} still live"


def alerts_evaluate(
    *, now: datetime | None = None, kinds: Iterable[str] | None = None, actor: User | None = None
) -> Evaluation:
    """Run the rules (all, or the given kinds) and bring the alerts in line with them."""
    now = now or timezone.now()
    kinds = list(kinds or KINDS)
    if actor is not None and not actor.has_perm(MANAGE_PERMISSION):
        raise audit_permission_denied(
            actor=actor,
            attempted="alerts_evaluate",
            permission=MANAGE_PERMISSION,
            message="You may not evaluate alerts.",
        )
    findings = {kind: KINDS[kind].rule(now=now) for kind in kinds}
    try:
        return _apply(findings, now=now, actor=actor)
    except IntegrityError:
        # A concurrent evaluation raised the same alert first: its rows are now there to update.
        return _apply(findings, now=now, actor=actor)


def _apply(findings: dict[str, list[Finding]], *, now: datetime, actor: User | None) -> Evaluation:
    result = Evaluation()
    entries: list[AuditEntry] = []
    with transaction.atomic():
        live = {
            (alert.kind, alert.key): alert
            for alert in Alert.objects.select_for_update().filter(
                status__in=Alert.LIVE, kind__in=list(findings)
            )
        }
        seen = set()
        for kind, kind_findings in findings.items():
            for finding in kind_findings:
                seen.add((kind, finding.key))
                alert = live.get((kind, finding.key))
                if alert is None:
                    alert = _raise(kind, finding, now=now)
                    result.raised.append(alert)
                    entries.append(_entry("alert.raised", actor, alert, {"items": len(finding.items)}))
                    continue
                new_items = _ids(finding.items) - set(alert.dismissed_items)
                alert.items, alert.reason, alert.last_evaluated_at = finding.items, finding.reason, now
                if alert.status == Alert.Status.DISMISSED and new_items:
                    alert.status, alert.first_raised_at, alert.notified_at = Alert.Status.OPEN, now, None
                    result.raised.append(alert)
                    details = {"items": len(finding.items), "because": "new affected items since dismissed"}
                    entries.append(_entry("alert.raised", actor, alert, details))
                alert.save()
                result.updated += 1
        for key, alert in live.items():
            if key not in seen:
                alert.status, alert.resolved_at, alert.last_evaluated_at = Alert.Status.RESOLVED, now, now
                alert.save(update_fields=["status", "resolved_at", "last_evaluated_at"])
                result.resolved.append(alert)
                entries.append(_entry("alert.resolved", actor, alert, {}))
        RuleEvaluation.objects.bulk_create(
            [RuleEvaluation(kind=kind, evaluated_at=now) for kind in findings],
            update_conflicts=True,
            unique_fields=["kind"],
            update_fields=["evaluated_at"],
        )
        audit_record_many(entries=entries, at=now)
        _notify([alert for alert in result.raised if alert.severity == Alert.Severity.HIGH], now=now)
    return result


def _raise(kind: str, finding: Finding, *, now: datetime) -> Alert:
    return Alert.objects.create(
        kind=kind,
        key=finding.key,
        severity=KINDS[kind].severity,
        items=finding.items,
        reason=finding.reason,
        first_raised_at=now,
        last_evaluated_at=now,
    )


def _ids(items: list[dict[str, Any]]) -> set[str]:
    return {f"{entry['type']}:{entry['id']}" for entry in items}


def _entry(action: str, actor: User | None, alert: Alert, details: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        action=action,
        actor=actor,
        target=alert,
        details={"kind": alert.kind, "key": alert.key, "severity": alert.severity, **details},
    )


def alerts_last_evaluated_at() -> datetime | None:
    """When the rules were last evaluated, or None if they never were."""
    last: datetime | None = RuleEvaluation.objects.aggregate(last=Max("evaluated_at"))["last"]
    return last


def alerts_evaluate_if_never(*, now: datetime | None = None) -> Evaluation | None:
    """The first evaluation (after migrate, or by the demo): only if none ever ran."""
    if RuleEvaluation.objects.exists():
        return None
    return alerts_evaluate(now=now)


def alert_recipients() -> list[User | str]:
    """PIM_ALERT_EMAILS if set, else the PIM Administrators (eligible or active)."""
    if settings.PIM_ALERT_EMAILS:
        return list(settings.PIM_ALERT_EMAILS)
    return list(pim_administrators())


def _notify(alerts: list[Alert], *, now: datetime) -> None:
    """Email the security admins about new high-severity alerts, once per raise (claimed)."""
    claimed = [
        a for a in alerts if Alert.objects.filter(pk=a.pk, notified_at__isnull=True).update(notified_at=now)
    ]
    if not claimed:
        return
    email_queue(
        recipients=alert_recipients(),
        template="alert-raised",
        context={
            "alerts": [{"title": a.title, "reason": a.reason, "items": a.items, "pk": a.pk} for a in claimed]
        },
        now=now,
    )


def alert_dismiss(*, actor: User, alert: Alert, reason: str, now: datetime | None = None) -> Alert:
    """Dismiss an open alert with a reason; it comes back if the condition resolves and returns,
    or new items are affected."""
    if not actor.has_perm(MANAGE_PERMISSION):
        raise audit_permission_denied(
            actor=actor,
            attempted="alert_dismiss",
            permission=MANAGE_PERMISSION,
            target=alert,
            message="You may not dismiss alerts.",
        )
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", required=True)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if not alert.can_become(Alert.Status.DISMISSED):
            raise ValidationError(f"This alert is {alert.status}; it cannot be dismissed.")
        alert.status = Alert.Status.DISMISSED
        alert.dismissed_by, alert.dismissed_at, alert.dismiss_reason = actor, now, reason
        alert.dismissed_items = sorted(_ids(alert.items))
        alert.save()
        audit_record(
            action="alert.dismissed",
            actor=actor,
            target=alert,
            details={"kind": alert.kind, "key": alert.key, "reason": reason, "items": len(alert.items)},
            at=now,
        )
    return alert


def alert_fix(*, actor: User, alert: Alert, item_id: str, now: datetime | None = None) -> str:
    """Apply the alert's fix to one of its items, through the audited services, then evaluate
    the alert's kind again. Returns what was done."""
    if not actor.has_perm(MANAGE_PERMISSION):
        raise audit_permission_denied(
            actor=actor,
            attempted="alert_fix",
            permission=MANAGE_PERMISSION,
            target=alert,
            message="You may not fix alerts.",
        )
    now = now or timezone.now()
    fix = FIXES.get(alert.kind)
    if fix is None or alert.status == Alert.Status.RESOLVED:
        raise ValidationError("This alert has no fix to apply.")
    if not any(entry["id"] == item_id for entry in alert.items):
        raise ValidationError("That item is not part of this alert (any more).")
    done = fix(actor=actor, item_id=item_id, now=now)
    alerts_evaluate(kinds=[alert.kind], now=now, actor=actor)
    return done
