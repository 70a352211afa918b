"""Template helpers for audit pages: links from events to evidence, details as before/after."""

import json

from django import template

from audit import registry

register = template.Library()
ABSENT = object()  # a field on one side of a before/after only


@register.simple_tag
def evidence_url(event) -> str:
    """The evidence page of what an event is about (an activation request), or ""."""
    return registry.evidence_url(target_type=event.target_type, target_id=event.target_id)


@register.simple_tag
def details_view(details) -> dict:
    """{"changes": [(field, before, after)], "rest": pretty JSON of everything else}.

    Understands the two shapes services write: {"changes": {field: {"before", "after"}}} and
    {"before": {...}, "after": {...}}."""
    if not isinstance(details, dict):
        return {"changes": [], "rest": _pretty(details)}
    rest = dict(details)
    changes = []
    diff = rest.get("changes")
    if isinstance(diff, dict) and all(isinstance(v, dict) and "after" in v for v in diff.values()):
        del rest["changes"]
        changes = [
            (name, _text(v.get("before", ABSENT)), _text(v.get("after", ABSENT)))
            for name, v in sorted(diff.items())
        ]
    elif isinstance(rest.get("before"), dict) or isinstance(rest.get("after"), dict):
        before, after = rest.pop("before", None) or {}, rest.pop("after", None) or {}
        if not isinstance(before, dict) or not isinstance(after, dict):
            rest.update(before=before, after=after)
        else:
            names = sorted(set(before) | set(after))
            changes = [
                (name, _text(before.get(name, ABSENT)), _text(after.get(name, ABSENT))) for name in names
            ]
    return {"changes": changes, "rest": _pretty(rest) if rest else ""}


def _text(value) -> str:
    if value is ABSENT:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
