"""Scope strings: where an assignment applies.

``/`` is the whole directory. Entra roles may be narrowed to an administrative unit or an
application object; Azure roles to a management group, subscription, resource group or
resource; local roles to an app-defined path under ``/apps/``.

Whatever the kind, a scope must be in normal form (scope_normalised): ``/``, or ``/`` followed
by segments of letters, digits and ``._()-``, none empty (``//``), none ``.`` or ``..``, and no
trailing ``/``. Such a path is refused, never rewritten: ``/apps/billing/../payroll`` is not
read as ``/apps/payroll``, and above all never as a scope below ``/apps/billing``. The services,
the forms, the API inputs and the authorization check all apply this one rule.
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
    "group": [],  # PIM for Groups: the group itself, "/" only
    "app": [rf"/apps/{_SEGMENT}(/{_SEGMENT})*"],
}
# Normal form, for every kind: the characters of every kind's patterns, segment by segment.
_NORMAL_SEGMENT = re.compile(r"[A-Za-z0-9._()-]+")  # fullmatch: "$" would let a final "\n" by
_DOT_SEGMENTS = {".", ".."}

_COMPILED = {kind: [re.compile(rf"^{p}$") for p in patterns] for kind, patterns in _PATTERNS.items()}

_EXAMPLES = {
    "entra": "/ or /administrativeUnits/<id>",
    "azure": "/, /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<name>",
    "m365": "/",
    "group": "/ (a group role applies to its group as a whole)",
    "app": "/ or /apps/<name>[/...]",
}


def scope_normalised(scope: str) -> str:
    """Return the scope if it is in normal form (see the module's doc), else raise
    ValidationError. Kind-independent: the authorization check, which does not know the
    role's kind before its query, relies on it alone."""
    _check_path_form(scope)
    if scope != ROOT and not all(_NORMAL_SEGMENT.fullmatch(segment) for segment in scope.split("/")[1:]):
        raise ValidationError(
            "“%(scope)s” is not a valid scope: a scope's segments hold only letters, digits and ._()-.",
            code="scope_not_normal",
            params={"scope": scope[:80]},
        )
    return scope


def _check_path_form(scope: str) -> None:
    """The rules whose breach could change what a path means: it starts with /, has no empty
    segment, no trailing / and no . or .. segment."""
    if not isinstance(scope, str) or not scope:
        raise ValidationError("A scope is required (use / for the whole directory).", code="scope_required")
    if len(scope) > MAX_SCOPE_LENGTH:
        raise ValidationError(f"A scope is at most {MAX_SCOPE_LENGTH} characters.", code="scope_too_long")
    if scope == ROOT:
        return
    segments = scope.split("/")
    if segments[0] != "" or "" in segments[1:]:
        raise ValidationError(
            "“%(scope)s” is not a valid scope: it is / or a path such as /apps/payroll, "
            "with no empty segment (//) and no trailing /.",
            code="scope_not_normal",
            params={"scope": scope[:80]},
        )
    if _DOT_SEGMENTS & set(segments):
        raise ValidationError(
            "“%(scope)s” is not a valid scope: . and .. segments are not allowed; name the scope itself.",
            code="scope_not_normal",
            params={"scope": scope[:80]},
        )


def scope_validate(scope: str, *, kind: str) -> str:
    """Return the scope if it is in normal form and well-formed for the role kind, else raise
    ValidationError (the kind's patterns allow only characters of the normal form)."""
    _check_path_form(scope)
    if scope == ROOT or any(pattern.fullmatch(scope) for pattern in _COMPILED.get(kind, [])):
        return scope
    raise ValidationError(
        "“%(scope)s” is not a valid scope for this role; expected %(examples)s.",
        code="scope_invalid",
        params={"scope": scope[:80], "examples": _EXAMPLES.get(kind, "/")},
    )


def scope_covers(outer: str, inner: str) -> bool:
    """True if an assignment at `outer` applies at `inner` (same scope or below it). A path not
    in normal form is covered by nothing (``/apps/billing/../payroll`` is not below
    ``/apps/billing``)."""
    try:
        scope_normalised(inner)
    except ValidationError:
        return False
    if outer == ROOT:
        return True
    return inner == outer or inner.startswith(outer + "/")


def scope_ancestors(scope: str) -> list[str]:
    """Every scope that covers `scope`, itself included (for an indexed IN lookup). Raises
    ValidationError for a path not in normal form: callers validate their input first."""
    if scope_normalised(scope) == ROOT:
        return [ROOT]
    parts = scope.strip("/").split("/")
    return [ROOT] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
