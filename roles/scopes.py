"""Scope strings: where an assignment applies.

``/`` is the whole directory. Entra roles may be narrowed to an administrative unit or an
application object; Azure roles to a management group, subscription, resource group or
resource; local roles to an app-defined path under ``/apps/``.
"""

import re

from django.core.exceptions import ValidationError

MAX_SCOPE_LENGTH = 400
ROOT = "/"

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._()-]{0,127}"
_RESOURCE_GROUP = r"[A-Za-z0-9._()-]{0,89}[A-Za-z0-9_()-]"

_PATTERNS = {
    "entra": [rf"/administrativeUnits/{_GUID}", rf"/{_GUID}"],
    "azure": [
        rf"/providers/Microsoft\.Management/managementGroups/{_SEGMENT}",
        rf"/subscriptions/{_GUID}",
        rf"/subscriptions/{_GUID}/resourceGroups/{_RESOURCE_GROUP}",
        rf"/subscriptions/{_GUID}/resourceGroups/{_RESOURCE_GROUP}(/providers/{_SEGMENT}(/{_SEGMENT})+)",
    ],
    "m365": [],
    "app": [rf"/apps/{_SEGMENT}(/{_SEGMENT})*"],
}
_COMPILED = {kind: [re.compile(rf"^{p}$") for p in patterns] for kind, patterns in _PATTERNS.items()}

_EXAMPLES = {
    "entra": "/ or /administrativeUnits/<id>",
    "azure": "/, /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<name>",
    "m365": "/",
    "app": "/ or /apps/<name>[/...]",
}


def scope_validate(scope: str, *, kind: str) -> str:
    """Return the scope if it is well-formed for the role kind, else raise ValidationError."""
    if not isinstance(scope, str) or not scope:
        raise ValidationError("A scope is required (use / for the whole directory).", code="scope_required")
    if len(scope) > MAX_SCOPE_LENGTH:
        raise ValidationError(f"A scope is at most {MAX_SCOPE_LENGTH} characters.", code="scope_too_long")
    if scope == ROOT or any(pattern.match(scope) for pattern in _COMPILED.get(kind, [])):
        return scope
    raise ValidationError(
        "“%(scope)s” is not a valid scope for this role; expected %(examples)s.",
        code="scope_invalid",
        params={"scope": scope[:80], "examples": _EXAMPLES.get(kind, "/")},
    )


def scope_covers(outer: str, inner: str) -> bool:
    """True if an assignment at `outer` applies at `inner` (same scope or below it)."""
    if outer == ROOT:
        return True
    return inner == outer or inner.startswith(outer + "/")


def scope_ancestors(scope: str) -> list[str]:
    """Every scope that covers `scope`, itself included (for an indexed IN lookup)."""
    if scope == ROOT:
        return [ROOT]
    parts = scope.strip("/").split("/")
    return [ROOT] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
