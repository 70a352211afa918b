"""Drift: active role assignments in Entra that the portal did not make (SPEC 2.6 alert "roles
assigned outside the portal").

The portal made an assignment when a current active assignment of an Entra role has a grant
the outbox carried out (or is about to), or a revoke it has yet to carry out. Everything else
Entra lists as a direct assignment becomes an open DriftFinding; a finding Entra no longer
lists is resolved. With ENTRA_REMOVE_DRIFT on, findings are removed with adminRemove, except
for principals the portal does not know (service principals, such as the portal's own app),
those in ENTRA_DRIFT_EXCLUDE (break-glass accounts), and lockout-protected roles (Global
Administrator), which are only ever reported.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from accounts.models import DirectoryGroup, User
from audit.services import audit_record
from roles.directory import DirectoryError
from roles.models import ActiveAssignment, DirectoryOperation, Role

from .backend import schedule_request
from .client import GraphClient, GraphUnavailable
from .models import DriftFinding
from .sync import Tally, parse_time

ASSIGNMENTS = "roleManagement/directory/roleAssignmentScheduleInstances"
REMOVAL_JUSTIFICATION = "Removed by PIM Portal: assigned outside the portal."
ENDED_GRACE = timedelta(minutes=15)
Op = DirectoryOperation


def check_drift(graph: GraphClient, tally: Tally, now) -> None:
    instances = list(graph.all(ASSIGNMENTS))  # the whole list first: a partial one proves nothing
    expected = portal_made_keys(now)
    outside = {}
    for instance in instances:
        if str(instance.get("memberType") or "Direct").lower() != "direct":
            tally.count("drift", "inherited")  # follows from a group's (or parent's) own assignment
            continue
        ends_at = _time(instance.get("endDateTime"))
        if ends_at is not None and ends_at <= now:
            tally.count("drift", "expired")  # over; Entra has yet to clear it away
            continue
        key = (
            str(instance.get("principalId") or ""),
            str(instance.get("roleDefinitionId") or "").lower(),
            str(instance.get("directoryScopeId") or "/"),
        )
        if key in expected:
            tally.count("drift", "portal")
        else:
            outside[key] = instance
    findings = _record(outside, tally, now)
    if settings.ENTRA_REMOVE_DRIFT:
        _remove(graph, findings, tally, now)


def portal_made_keys(now, kind: str = Role.Kind.ENTRA) -> set[tuple[str, str, str]]:
    """(principal object id, role template id, scope) of what the portal has put in Entra
    (or, for kind AZURE, in ARM), including what ended a moment ago (Entra's clock and its
    clean-up may lag behind)."""
    entra = ActiveAssignment.objects.filter(role__kind=kind)
    recent = now - ENDED_GRACE
    granted = entra.filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=recent),
        Q(ended_at__isnull=True) | Q(ended_at__gt=recent),
        starts_at__lte=now,
        directory_operations__operation=Op.Operation.GRANT,
        directory_operations__status__in=[Op.Status.DONE, Op.Status.PENDING],
    )
    removing = entra.filter(
        directory_operations__operation=Op.Operation.REVOKE, directory_operations__status=Op.Status.PENDING
    )
    fields = ("user__external_id", "group__external_id", "role__template_id", "scope")
    return {
        (user_id or group_id or "", template_id.lower(), scope)
        for queryset in (granted, removing)
        for user_id, group_id, template_id, scope in queryset.values_list(*fields)
    }


def _record(
    outside: dict,
    tally: Tally,
    now,
    *,
    open_findings=None,
    source: str = DriftFinding.Source.ENTRA,
    kind: str = "drift",
) -> list[DriftFinding]:
    """Open a finding for new drift, refresh the open ones, resolve what is gone (of the open
    findings given: by default, those of directory roles)."""
    if open_findings is None:
        open_findings = DriftFinding.objects.filter(source=DriftFinding.Source.ENTRA)
    open_findings = {
        (f.principal_id, f.role_template_id, f.directory_scope): f
        # PIM for Groups' findings are entra.groups' own
        for f in open_findings.filter(resolved_at__isnull=True)
        .exclude(role__kind=Role.Kind.GROUP)
        .select_related("role")
    }
    users = {u.external_id: u for u in User.objects.filter(external_id__in=[k[0] for k in outside])}
    groups = {
        g.external_id: g for g in DirectoryGroup.objects.filter(external_id__in=[k[0] for k in outside])
    }
    role_kind = Role.Kind.AZURE if source == DriftFinding.Source.ARM else Role.Kind.ENTRA
    roles = {r.template_id.lower(): r for r in Role.objects.filter(kind=role_kind)}
    current = []
    for key, instance in outside.items():
        finding = open_findings.get(key)
        if finding is None:
            finding = _detect(key, instance, users, groups, roles, now, source)
            tally.count(kind, "detected")
        else:
            DriftFinding.objects.filter(pk=finding.pk).update(
                last_seen_at=now, assignment_id=str(instance.get("id") or "")[:200]
            )
            tally.count(kind, "open")
        current.append(finding)
    for key, finding in open_findings.items():
        if key not in outside:
            _resolve(finding, DriftFinding.Resolution.GONE, now)
            tally.count(kind, "resolved")
    return current


def _detect(
    key, instance: dict, users: dict, groups: dict, roles: dict, now, source: str = DriftFinding.Source.ENTRA
) -> DriftFinding:
    principal_id, template_id, scope = key
    user, group = users.get(principal_id), groups.get(principal_id)
    kind = DriftFinding.PrincipalType
    with transaction.atomic():
        finding = DriftFinding.objects.create(
            principal_id=principal_id,
            principal_type=kind.USER if user else kind.GROUP if group else kind.OTHER,
            user=user,
            group=group,
            role=roles.get(template_id),
            role_template_id=template_id,
            directory_scope=scope,
            source=source,
            assignment_id=str(instance.get("id") or "")[:200],
            assignment_type=str(instance.get("assignmentType") or "")[:16],
            entra_starts_at=_time(instance.get("startDateTime")),
            entra_ends_at=_time(instance.get("endDateTime")),
            first_seen_at=now,
            last_seen_at=now,
        )
        audit_record(
            action="entra.drift_detected",
            target=finding,
            role=finding.role,
            scope=scope,
            details={
                "principal_id": principal_id,
                "principal": finding.principal_label,
                "role_template_id": template_id,
                "assignment_id": finding.assignment_id,
                "assignment_type": finding.assignment_type,
                "ends_at": finding.entra_ends_at,
            },
            at=now,
        )
    return finding


def _resolve(finding: DriftFinding, resolution: str, now) -> None:
    with transaction.atomic():
        updated = DriftFinding.objects.filter(pk=finding.pk, resolved_at__isnull=True).update(
            resolved_at=now, resolution=resolution
        )
        if updated:
            action = (
                "entra.drift_removed"
                if resolution == DriftFinding.Resolution.REMOVED
                else "entra.drift_resolved"
            )
            audit_record(
                action=action,
                target=finding,
                role=finding.role,
                scope=finding.directory_scope,
                details={"principal_id": finding.principal_id, "resolution": resolution},
                at=now,
            )


def _remove(
    graph: GraphClient, findings: list[DriftFinding], tally: Tally, now, remove=None, kind: str = "drift"
) -> None:
    """Remove each finding that may be removed: by remove(finding) if given (ARM), else by
    Graph's adminRemove."""
    excluded = {object_id.lower() for object_id in settings.ENTRA_DRIFT_EXCLUDE}
    for finding in findings:
        reason = _kept_because(finding, excluded)
        if reason:
            tally.count(kind, "kept")
            continue
        target = (finding.principal_id, finding.role_template_id, finding.directory_scope)
        try:
            if remove is not None:
                remove(finding)
            else:
                schedule_request(
                    graph, action="adminRemove", target=target, justification=REMOVAL_JUSTIFICATION
                )
        except DirectoryError as error:
            tally.error(kind, finding.label, str(error))
            if isinstance(error, GraphUnavailable):
                return  # the next run tries again
            continue
        _resolve(finding, DriftFinding.Resolution.REMOVED, now)
        tally.count(kind, "removed")


def _time(value):
    try:
        return parse_time(value)
    except ValidationError:
        return None  # unreadable: treated as no end (the finding is kept, not dropped)


def _kept_because(finding: DriftFinding, excluded: set[str]) -> str:
    if finding.principal_type == DriftFinding.PrincipalType.OTHER:
        return "not a user or group the portal knows (service principals are never removed)"
    if finding.principal_id.lower() in excluded:
        return "in ENTRA_DRIFT_EXCLUDE"
    if finding.role is None:
        return "a role the catalog does not have"
    if finding.role.lockout_protected:
        return "a lockout-protected role (break-glass accounts hold it outside the portal)"
    return ""
