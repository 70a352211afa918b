"""The import steps of an Entra sync, and what they share.

Every change goes through the portal's own services (accounts, roles) with actor None (the
system), so it is checked and audited like any other; what those refuse (anti-lockout, policy)
is recorded on the run as an error and the sync goes on. Each step compares first and calls a
service only for a real difference, so a second run changes nothing and writes no event.
Graph is read page by page (following @odata.nextLink) outside any database transaction.

Here: role definitions and role settings. People (users, managers, groups) are in
entra.people, eligibilities in entra.eligibilities, drift in entra.drift.
"""

from collections import Counter, defaultdict

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.dateparse import parse_datetime

from accounts.models import DirectoryGroup, User
from common.text import clean_text
from roles.models import Role, RoleSettings
from roles.services import role_create, role_settings_update, role_update

from .client import GraphClient
from .policies import policy_settings

MAX_ERRORS = 200  # kept on the run; the counts hold the total
POLICY_FILTER = "scopeId eq '/' and scopeType eq 'DirectoryRole'"
SOURCE = "entra"


class Tally:
    """Counts per kind and outcome, and the errors, of one run."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.errors: list[dict] = []

    def count(self, kind: str, outcome: str) -> None:
        self.counts[kind][outcome] += 1

    def error(self, kind: str, item: str, message: str) -> None:
        self.counts[kind]["errors"] += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"kind": kind, "item": str(item)[:200], "message": str(message)[:500]})

    @property
    def error_total(self) -> int:
        return sum(counter["errors"] for counter in self.counts.values())

    def as_dict(self) -> dict:
        return {kind: dict(counter) for kind, counter in self.counts.items()}


def apply_each(tally: Tally, kind: str, item: str, change, *args) -> None:
    """Run one item's change; a refusal is the item's error, not the run's end."""
    try:
        outcome = change(*args)
    except (ValidationError, PermissionDenied) as error:
        tally.error(kind, item, refusal_message(error))
    else:
        tally.count(kind, outcome)


def refusal_message(error: Exception) -> str:
    return "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)


# --- Role definitions --------------------------------------------------------------------------


def import_roles(graph: GraphClient, tally: Tally) -> None:
    catalog = {role.template_id.lower(): role for role in Role.objects.filter(kind=Role.Kind.ENTRA)}
    params = {"$select": "id,templateId,displayName,description,isBuiltIn"}
    for definition in graph.all("roleManagement/directory/roleDefinitions", params=params):
        template_id = str(definition.get("templateId") or definition.get("id") or "").lower()
        if not template_id:
            continue
        name = str(definition.get("displayName") or template_id)
        apply_each(tally, "roles", name, _role_apply, definition, template_id, catalog.get(template_id))


def _role_apply(definition: dict, template_id: str, role: Role | None) -> str:
    name = clean_text(definition.get("displayName"), field="name", required=True, max_length=200)
    description = clean_text(definition.get("description"), field="description")
    if role is None:
        privileged = definition.get("isPrivileged", True) is not False
        role_create(
            actor=None,
            name=name,
            kind=Role.Kind.ENTRA,
            description=description,
            template_id=template_id,
            privileged=privileged,
            tier=Role.Tier.HIGH if privileged else Role.Tier.STANDARD,
        )
        return "created"
    if role.builtin:
        return "unchanged"  # the catalog's names and descriptions are the portal's own
    changes = {
        field: value
        for field, value in (("name", name), ("description", description))
        if getattr(role, field) != value
    }
    if not changes:
        return "unchanged"
    role_update(actor=None, role=role, changes=changes)
    return "updated"


# --- Role settings -----------------------------------------------------------------------------


def import_role_settings(graph: GraphClient, tally: Tally) -> None:
    roles = {role.template_id.lower(): role for role in Role.objects.filter(kind=Role.Kind.ENTRA)}
    users = {user.external_id: user for user in User.objects.exclude(external_id="")}
    groups = {group.external_id: group for group in DirectoryGroup.objects.exclude(external_id="")}
    params = {"$filter": POLICY_FILTER, "$expand": "policy($expand=rules)"}
    for item in graph.all("policies/roleManagementPolicyAssignments", params=params):
        role = roles.get(str(item.get("roleDefinitionId") or "").lower())
        if role is None:
            tally.count("role_settings", "skipped")
            continue
        rules = (item.get("policy") or {}).get("rules") or []
        apply_each(tally, "role_settings", role.name, _settings_apply, role, rules, users, groups, tally)


def _settings_apply(role: Role, rules: list, users: dict, groups: dict, tally: Tally) -> str:
    policy = policy_settings(rules)
    for problem in policy.problems:
        tally.error("role_settings", role.name, problem)
    for object_id in (policy.approver_ids - set(users)) | (policy.approver_group_ids - set(groups)):
        tally.error("role_settings", role.name, f"The approver {object_id} is not an imported user or group.")
    role_settings = RoleSettings.objects.get(role=role)
    changes = {
        field: value for field, value in policy.changes.items() if getattr(role_settings, field) != value
    }
    wanted_approvers = [users[i] for i in sorted(policy.approver_ids) if i in users]
    wanted_groups = [groups[i] for i in sorted(policy.approver_group_ids) if i in groups]
    approvers: list[User] | None = wanted_approvers
    approver_groups: list[DirectoryGroup] | None = wanted_groups
    if {u.pk for u in wanted_approvers} == set(role_settings.approvers.values_list("pk", flat=True)):
        approvers = None
    if {g.pk for g in wanted_groups} == set(role_settings.approver_groups.values_list("pk", flat=True)):
        approver_groups = None
    if not changes and approvers is None and approver_groups is None:
        return "unchanged"
    role_settings_update(
        actor=None, role=role, changes=changes, approvers=approvers, approver_groups=approver_groups
    )
    return "updated"


def parse_time(value):
    if not value:
        return None
    moment = parse_datetime(str(value))
    if moment is None or moment.tzinfo is None:
        raise ValidationError(f"Unreadable time “{str(value)[:40]}”.")
    return moment
