"""What the change says, field by field: the rows of the approval page, the email and the
pending_change.proposed audit event."""

from datetime import datetime, timedelta
from typing import Any, cast

from django.db import models

from accounts.models import DirectoryGroup, User

from ..models import PendingChange, Role, RoleSettings
from ..notification_matrix import recipients_parse
from .fields import ALLOWED, LABELS, LONGER, RECIPIENTS, STRONGEST, TURNED_OFF, WEAKER
from .payload import _from_json, _principal

Kind = PendingChange.Kind
Status = PendingChange.Status


def pending_change_rows(change: PendingChange) -> list[dict]:
    """One row per field: its label, the value now (as stored today; for a change already
    decided, as it was when proposed) and the proposed one, and whether that loosens it."""
    if change.kind == Kind.ROLE_SETTINGS:
        return _settings_rows(change)
    if change.kind == Kind.ROLE:
        current = change.role if change.status == Status.PENDING else None
        rows = []
        for field, proposed in change.payload["changes"].items():
            now_value = getattr(current, field) if current is not None else change.before.get(field)
            role_field = cast("models.Field[Any, Any]", Role._meta.get_field(field))  # not a relation
            rows.append(_row(field, str(role_field.verbose_name), now_value, proposed))
        return rows
    payload = change.payload
    principal = _principal(payload["principal"])
    starts_at = _from_json("starts_at", payload["starts_at"])
    ends_at = _from_json("ends_at", payload["ends_at"])
    who = principal.label if principal is not None else "(no longer exists)"
    if "assignment" in payload:  # a longer end for an existing assignment
        facts = [
            ("principal", "For", who, who),
            ("scope", "Scope", payload["scope"], payload["scope"]),
            ("ends_at", "Ends", _end(_from_json("ends_at", change.before.get("ends_at"))), _end(ends_at)),
            ("justification", "Justification", "—", payload["justification"] or "—"),
        ]
    else:
        starts = f"{starts_at:%Y-%m-%d %H:%M} UTC (or when approved)" if starts_at else "When approved"
        facts = [
            ("principal", "For", "—", who),
            ("scope", "Scope", "—", payload["scope"]),
            ("starts_at", "Starts", "—", starts),
            ("ends_at", "Ends", "—", _end(ends_at)),
            ("justification", "Justification", "—", payload["justification"] or "—"),
        ]
    return [
        {
            "field": field,
            "label": label,
            "now": now,
            "proposed": value,
            "loosens": field == "ends_at" and now != "—",
        }
        for field, label, now, value in facts
    ]


def _end(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "Never (permanent)"


def _settings_rows(change: PendingChange) -> list[dict]:
    payload = change.payload
    live = change.status == Status.PENDING
    current = RoleSettings.objects.get(role_id=change.role_id) if live else None
    rows = []
    for field, value in payload["changes"].items():
        now_value = getattr(current, field) if live else _from_json(field, change.before.get(field))
        rows.append(_row(field, LABELS[field], now_value, _from_json(field, value)))
    for field, model, label in (
        ("approvers", User, "approvers"),
        ("approver_groups", DirectoryGroup, "approver groups"),
    ):
        if field not in payload:
            continue
        now_ids = (
            set(getattr(current, field).values_list("pk", flat=True)) if live else set(change.before[field])
        )
        rows.append(
            {
                "field": field,
                "label": label.capitalize(),
                "now": _names(model, now_ids),
                "proposed": _names(model, set(payload[field])),
                "loosens": bool(set(payload[field]) - now_ids),
            }
        )
    return rows


def _row(field: str, label: str, now_value, proposed) -> dict:
    loosens = (
        (field in LONGER and proposed > now_value)
        or (field in TURNED_OFF and bool(now_value) and not proposed)
        or (field in ALLOWED and bool(proposed) and not now_value)
        or (field in WEAKER and now_value == STRONGEST and proposed != STRONGEST)
        or (field == "approvals_required" and proposed < now_value)
        or (field == "privileged" and bool(now_value) and not proposed)
        or (field in RECIPIENTS and bool(_lines(now_value) - _lines(proposed)))
    )
    return {
        "field": field,
        "label": str(label)[:1].upper() + str(label)[1:],
        "now": _display(now_value),
        "proposed": _display(proposed),
        "loosens": bool(loosens),
    }


def _lines(value) -> set[str]:
    return set(recipients_parse(str(value or "")))


def _display(value) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, timedelta):
        return _human(value)
    if value is None or value == "":
        return "—"
    return str(value)


def _human(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds // 60} minutes"


def _names(model, ids: set) -> str:
    names = sorted(_label(obj) for obj in model.objects.filter(pk__in=ids))
    return ", ".join(names) or "—"


def _label(obj) -> str:
    return str(getattr(obj, "label", None) or obj)
