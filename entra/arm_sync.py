"""The Azure Resource Manager part of an Entra sync, for each subscription in
ENTRA_ARM_SUBSCRIPTIONS (none: the part is off).

- Eligibilities: ARM's current eligibility schedule instances at the subscription and below
  (resource groups, resources) are mirrored as portal eligibilities of the matching Azure
  roles, by the same rules as Entra's (entra.eligibilities): created, adopted, their end
  moved, ended when ARM no longer lists them. A role the catalog lacks or a principal the
  portal has not imported is an error of the run, not its end.
- Drift: direct active assignments of kind Assigned that the portal did not make become drift
  findings (source ARM) as for directory roles (entra.drift), and are removed by AdminRemove
  when ENTRA_REMOVE_DRIFT is on. Activations (kind Activated) are PIM's own use of an
  eligibility, not drift.

The subscription is listed without `$filter=atScope()`: that filter keeps what is at or above
the subscription and would hide the resource groups and resources below it, which are the
scopes the portal manages. What is above (management groups, the root) is counted and left
alone: it belongs to no configured subscription.
"""

import uuid
from functools import partial

from django.conf import settings
from django.db.models import Q

from accounts.models import DirectoryGroup, User
from roles.directory import DirectoryError
from roles.directory_services import directory_changes_applying
from roles.models import Role

from . import drift
from .arm import (
    ASSIGNMENT_INSTANCES,
    ELIGIBILITY_INSTANCES,
    REQUEST_NAMESPACE,
    ArmClient,
    arm_beside,
    arm_schedule_request,
    definition_guid,
    scope_path,
)
from .client import GraphClient
from .eligibilities import _eligibility_apply, _eligibility_end
from .models import DriftFinding, ImportedEligibility
from .sync import Tally, apply_each

ELIGIBILITIES = "arm_eligibilities"
DRIFT = "arm_drift"


def import_arm(graph: GraphClient, tally: Tally, now) -> None:
    """Each configured subscription on its own: one that ARM refuses (no role for the app
    there) or cannot answer for is an error of the run; the others go on."""
    subscriptions = settings.ENTRA_ARM_SUBSCRIPTIONS
    if not subscriptions:
        return
    arm = arm_beside(graph)
    for subscription in subscriptions:
        scope = f"/subscriptions/{subscription}"
        for kind, step in ((ELIGIBILITIES, import_eligibilities), (DRIFT, check_drift)):
            try:
                step(arm, scope, tally, now)
            except DirectoryError as error:
                tally.error(kind, scope, str(error))


def _instances(
    arm: ArmClient, scope: str, collection: str, tally: Tally, kind: str
) -> list[tuple[dict, dict]]:
    """The whole listing (a partial one proves nothing) as (instance, its properties), only
    what is at the subscription or below."""
    found = []
    for instance in arm.all(scope_path(scope, collection)):
        properties = instance.get("properties") or {}
        if not within(str(properties.get("scope") or ""), scope):
            tally.count(kind, "elsewhere")
            continue
        if str(properties.get("memberType") or "Direct").lower() == "inherited":
            tally.count(kind, "inherited")  # follows from an assignment at a parent scope
            continue
        found.append((instance, properties))
    return found


def within(scope: str, subscription_scope: str) -> bool:
    scope, top = scope.lower(), subscription_scope.lower()
    return scope == top or scope.startswith(top + "/")


def _subtree(scope: str) -> Q:
    return Q(directory_scope__iexact=scope) | Q(directory_scope__istartswith=scope + "/")


# --- Eligibilities -------------------------------------------------------------------------------


def import_eligibilities(arm: ArmClient, scope: str, tally: Tally, now) -> None:
    items = _instances(arm, scope, ELIGIBILITY_INSTANCES, tally, ELIGIBILITIES)
    maps = {
        "roles": {role.template_id.lower(): role for role in Role.objects.filter(kind=Role.Kind.AZURE)},
        **_principals(),
    }
    links = {
        (link.principal_id, link.role_template_id, link.directory_scope): link
        for link in ImportedEligibility.objects.select_related("eligible__role").filter(
            _subtree(scope), eligible__role__kind=Role.Kind.AZURE
        )
    }
    seen = set()
    with directory_changes_applying():  # what comes from ARM is not written back to it
        for instance, properties in items:
            key = _key(properties)
            seen.add(key)
            item = {
                "id": instance.get("name") or instance.get("id"),
                "endDateTime": properties.get("endDateTime"),
            }
            apply_each(
                tally, ELIGIBILITIES, " ".join(key), _eligibility_apply, item, key, links.get(key), maps, now
            )
        for key, link in links.items():
            if key not in seen:
                apply_each(tally, ELIGIBILITIES, " ".join(key), _eligibility_end, link, now)


def _principals() -> dict:
    return {
        "users": {user.external_id: user for user in User.objects.exclude(external_id="")},
        "groups": {group.external_id: group for group in DirectoryGroup.objects.exclude(external_id="")},
    }


def _key(properties: dict) -> tuple[str, str, str]:
    return (
        str(properties.get("principalId") or ""),
        definition_guid(properties.get("roleDefinitionId")),
        str(properties.get("scope") or ""),
    )


# --- Drift -------------------------------------------------------------------------------------


def check_drift(arm: ArmClient, scope: str, tally: Tally, now) -> None:
    items = _instances(arm, scope, ASSIGNMENT_INSTANCES, tally, DRIFT)
    expected = {tuple(part.lower() for part in key) for key in drift.portal_made_keys(now, Role.Kind.AZURE)}
    outside = {}
    for instance, properties in items:
        if str(properties.get("assignmentType") or "Assigned").lower() != "assigned":
            tally.count(DRIFT, "activated")  # an eligibility used through PIM, not drift
            continue
        ends_at = drift._time(properties.get("endDateTime"))
        if ends_at is not None and ends_at <= now:
            tally.count(DRIFT, "expired")
            continue
        key = _key(properties)
        if tuple(part.lower() for part in key) in expected:
            tally.count(DRIFT, "portal")
            continue
        outside[key] = {
            "id": instance.get("name") or instance.get("id"),
            "assignmentType": properties.get("assignmentType"),
            "startDateTime": properties.get("startDateTime"),
            "endDateTime": properties.get("endDateTime"),
        }
    open_findings = DriftFinding.objects.filter(_subtree(scope), source=DriftFinding.Source.ARM)
    findings = drift._record(
        outside, tally, now, open_findings=open_findings, source=DriftFinding.Source.ARM, kind=DRIFT
    )
    if settings.ENTRA_REMOVE_DRIFT:
        drift._remove(arm, findings, tally, now, remove=partial(remove_finding, arm), kind=DRIFT)


def remove_finding(arm: ArmClient, finding: DriftFinding) -> dict:
    """AdminRemove of an assignment made outside the portal, under a name fixed per finding
    (a removal retried by the next run is the same request)."""
    name = str(uuid.uuid5(REQUEST_NAMESPACE, f"drift:{finding.pk}:{finding.first_seen_at.isoformat()}"))
    return arm_schedule_request(
        arm,
        request_type="AdminRemove",
        target=(finding.principal_id, finding.role_template_id, finding.directory_scope),
        justification=drift.REMOVAL_JUSTIFICATION,
        name=name,
    )
