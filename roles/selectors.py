"""Reads about roles and assignments. Authorization lives here: the *_get_for_* selectors
answer 404 for objects the user may not see."""

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from common.db import fetchone_prepared

from .models import ActiveAssignment, EligibleAssignment, Role
from .scopes import ROOT, scope_ancestors

PIM_ADMINISTRATOR = "pim.administrator"
PIM_AUDITOR = "pim.auditor"


@dataclass(frozen=True)
class Holding:
    """The answer to "does the user hold the role at the scope at that time"."""

    active: bool
    until: datetime | None = None  # None with active=True: permanent
    assignment_id: uuid.UUID | None = None  # the covering assignment that lasts longest


class AmbiguousRole(ValidationError):
    """A template id shared by several roles (e.g. an Entra and a local one)."""


@dataclass(frozen=True)
class GroupAccessRef:
    """A group role named by its group and access (PIM for Groups), as the API's check asks:
    the group by its portal id (digits) or its Entra object id, the access member or owner."""

    group: str
    access: str

    def roles_sql(self) -> tuple[str, list[Any]]:
        """The role's id by the unique (governed_group, group_access) index: one lookup (an
        Entra object id first by the partial external_id index, which a prepared statement's
        generic plan can use only when the query repeats the index's condition)."""
        if self.group.isdigit():
            return "SELECT id FROM roles_role WHERE governed_group_id = %s AND group_access = %s", [
                int(self.group),
                self.access,
            ]
        return (
            "SELECT id FROM roles_role WHERE governed_group_id = ("
            "SELECT id FROM accounts_directorygroup WHERE external_id = %s AND external_id <> '') "
            "AND group_access = %s",
            [self.group.lower(), self.access],
        )


def role_holding(
    *, user: User | str, role: Role | str | GroupAccessRef, scope: str = ROOT, at: datetime | None = None
) -> Holding:
    """The one rule, in ONE query: a principal holds a role at a scope at time T iff the user
    is active and an active assignment (theirs or one of their groups') at the scope or above
    it covers T and was not ended before T. ``until`` is the latest effective end (the
    earlier of ends_at and ended_at) among the covering assignments, None meaning permanent.
    Exact at every read: no job has to run for access to end.

    ``user`` is a User or a username; ``role`` a Role, or a role's id or template id (the
    API's check asks by name), or a group's access (GroupAccessRef: PIM for Groups). An
    unknown user, role or group simply holds nothing, so the answer does not say which people
    or roles exist; a template id shared by several roles raises AmbiguousRole.

    The statement is hand-written (holding_sql): the person's own assignments and their
    groups' are two index lookups joined with UNION ALL, the role by id or template id two
    more, never an OR across them (which makes PostgreSQL scan every row of the role).
    """
    at = at or timezone.now()
    if isinstance(user, User) and not user.is_active:
        return Holding(active=False)
    sql, params = holding_sql(user=user, role=role, scope=scope, at=at)
    return holding_from_row(fetchone_prepared(sql, params))


# The earlier of ends_at and ended_at, or NULL (permanent) when both are NULL.
_EFFECTIVE_END_SQL = (
    "CASE WHEN ends_at IS NULL THEN ended_at WHEN ended_at IS NULL THEN ends_at "
    "WHEN ends_at <= ended_at THEN ends_at ELSE ended_at END"
)


def holding_sql(
    *, user: User | str, role: Role | str | GroupAccessRef, scope: str, at: datetime
) -> tuple[str, list[Any]]:
    """The statement behind role_holding, for callers that embed it in their own (the API's
    check adds the caller's token and permission to it). It returns exactly one row:
    (roles named, best assignment id, its effective end); roles named is the number of roles
    the reference matches (1 for a Role), the id NULL when nothing covers ``at``."""
    uuid_field = ActiveAssignment._meta.pk
    assert uuid_field is not None  # noqa: S101 - for the type checker
    when = connection.ops.adapt_datetimefield_value(at)
    scopes = scope_ancestors(scope)
    params: list[Any] = [user.pk if isinstance(user, User) else user]
    role_params: list[Any] = []
    named_sql: str | None = None
    if isinstance(role, Role):
        role_params = [uuid_field.get_db_prep_value(role.pk, connection)]
    elif isinstance(role, GroupAccessRef):
        named_sql, named_params = role.roles_sql()
        params += named_params
    else:
        try:
            role_pk: uuid.UUID | None = uuid.UUID(role)
        except ValueError:
            role_pk = None
        # By template id, or by id: two index lookups, never an OR. The second leaves out a
        # role the first found, so a role matching both ways counts once without a UNION's
        # sort. "<> ''" repeats the template index's condition: without it a prepared
        # statement's generic plan cannot use that partial index and scans every role.
        named_sql, params = _NAMED_BY_TEMPLATE_SQL, [*params, role]
        if role_pk is not None:
            named_sql += _NAMED_BY_ID_SQL
            params += [uuid_field.get_db_prep_value(role_pk, connection), role]
    covers_params = [*role_params, *scopes, when, when, when]
    return _holding_text(isinstance(user, User), named_sql, len(scopes)), [
        *params,
        *covers_params,
        *covers_params,
    ]


_NAMED_BY_TEMPLATE_SQL = "SELECT id FROM roles_role WHERE template_id = %s AND template_id <> ''"
_NAMED_BY_ID_SQL = " UNION ALL SELECT id FROM roles_role WHERE id = %s AND template_id <> %s"


@functools.lru_cache(maxsize=32)
def _holding_text(person_by_id: bool, named_sql: str | None, scopes: int) -> str:
    """holding_sql's text, one per shape (built once: it is on every check's path). The
    person and the roles named are resolved once (WITH), for both branches."""
    person = "id = %s" if person_by_id else "username = %s"
    # Only fixed fragments are formatted in; every value is a bound parameter.
    ctes = [f"person AS (SELECT id FROM accounts_user WHERE {person} AND is_active)"]  # noqa: S608
    if named_sql is None:  # a Role: its id is a parameter
        role_sql, count_sql = "= %s", "SELECT 1"
    else:
        ctes.append(f"named AS ({named_sql})")
        # One role, as an equality the (user, role, scope) index answers like a Role's id (no
        # semi-join over the roles named): when the reference names several, the answer is
        # AmbiguousRole whatever this finds.
        role_sql, count_sql = "= (SELECT id FROM named LIMIT 1)", "SELECT count(*) FROM named"
    covers = (
        f"role_id {role_sql} AND scope IN ({', '.join(['%s'] * scopes)}) AND starts_at <= %s "
        "AND (ends_at IS NULL OR ends_at > %s) AND (ended_at IS NULL OR ended_at > %s)"
    )
    return (
        f"WITH {', '.join(ctes)} "  # noqa: S608
        f"SELECT ({count_sql}) AS named, best.id, best.until FROM (SELECT 1 AS one) one LEFT JOIN ("
        f"SELECT a.id, {_EFFECTIVE_END_SQL} AS until FROM ("
        "SELECT id, ends_at, ended_at FROM roles_activeassignment "
        f"WHERE user_id = (SELECT id FROM person) AND {covers} "
        "UNION ALL "
        "SELECT id, ends_at, ended_at FROM roles_activeassignment WHERE group_id IN ("
        "SELECT directorygroup_id FROM accounts_directorygroup_members "
        f"WHERE user_id = (SELECT id FROM person)) AND {covers}"
        ") a ORDER BY until DESC NULLS FIRST, a.id LIMIT 1"
        ") best ON 1 = 1"
    )


def holding_from_row(row: "tuple[object, ...] | None", offset: int = 0) -> Holding:
    """The Holding a holding_sql row says (its three columns from ``offset`` on)."""
    if row is None:
        return Holding(active=False)
    named, assignment_id, until = row[offset : offset + 3]
    if int(named or 0) > 1:  # type: ignore[call-overload]
        raise AmbiguousRole({"role": "Several roles have this template id: ask with the role's id."})
    if assignment_id is None:
        return Holding(active=False)
    return Holding(
        active=True,
        until=from_db_column(ActiveAssignment._meta.get_field("ends_at"), until),
        assignment_id=from_db_column(ActiveAssignment._meta.get_field("id"), assignment_id),
    )


def from_db_column(field: Any, value: Any) -> Any:
    """A raw column value as the ORM would give it (SQLite returns text for times and ids)."""
    if value is None:
        return None
    column = field.cached_col  # the backend's converters read the expression's output_field
    for converter in column_converters(field):
        value = converter(value, column, connection)
    return value


def column_converters(field: Any) -> list[Any]:
    """The converters the ORM applies to a raw value of the field's column (none, for most
    columns on PostgreSQL: psycopg returns UUIDs and aware datetimes itself)."""
    return [*connection.ops.get_db_converters(field.cached_col), *field.get_db_converters(connection)]


def user_holds_role(*, user: User, role: Role, scope: str = ROOT, at: datetime | None = None) -> bool:
    return role_holding(user=user, role=role, scope=scope, at=at).active


def role_ids_named(*, text: str, limit: int = 2) -> list[uuid.UUID]:
    """The ids of at most ``limit`` roles that the text names: their name or template id (in
    any case) or their id. The audit explorer's role filter finds roles with it."""
    query = Q(name__iexact=text) | Q(template_id__iexact=text)
    try:
        query |= Q(pk=uuid.UUID(text))
    except ValueError:
        pass
    return list(Role.objects.filter(query).values_list("pk", flat=True)[:limit])


def portal_role(template_id: str) -> Role:
    return Role.objects.get(kind=Role.Kind.APP, template_id=template_id)


def permissions_from_active_roles(*, user: User, at: datetime | None = None) -> set[str]:
    """Django permissions granted by the portal roles the user holds at the root, right now."""
    if not user.is_active:
        return set()
    at = at or timezone.now()
    role_ids = ActiveAssignment.objects.for_user(user).current(at).filter(scope=ROOT).values("role_id")
    grants = (
        Role.objects.filter(pk__in=role_ids)
        .exclude(grants_permissions=[])
        .values_list("grants_permissions", flat=True)
    )
    return {permission for role_grants in grants for permission in role_grants}


def eligibilities_for_user(*, user: User, at: datetime | None = None) -> QuerySet[EligibleAssignment]:
    """The user's eligible assignments in force now (direct and through groups)."""
    at = at or timezone.now()
    return (
        EligibleAssignment.objects.for_user(user)
        .current(at)
        .select_related("role", "group")
        .order_by("role__name", "scope")
    )


def active_assignments_for_user(*, user: User, at: datetime | None = None) -> QuerySet[ActiveAssignment]:
    at = at or timezone.now()
    return (
        ActiveAssignment.objects.for_user(user)
        .current(at)
        .select_related("role", "group")
        .order_by("role__name", "scope")
    )


def user_can_manage_eligible(*, user: User, role: Role) -> bool:
    """PIM Administrators manage every role's eligibilities; a role's owners manage its own."""
    return user.has_perm("roles.manage_eligible_assignments") or user.has_perm(
        "roles.manage_eligible_assignments", role
    )


def user_can_manage_active(*, user: User, role: Role) -> bool:
    return user.has_perm("roles.manage_active_assignments")


def role_get_for_viewer(*, user: User, pk: uuid.UUID | str) -> Role:
    """A role whose assignments the user may see (PIM Administrators and Auditors while
    active, the role's owners), else 404."""
    role = Role.objects.select_related("settings").filter(pk=pk).first()
    if role is None or not (
        user.has_perm("roles.view_role") or user_can_manage_eligible(user=user, role=role)
    ):
        raise Http404("No such role.")
    return role


def role_assignments(
    *, role: Role, at: datetime | None = None
) -> tuple[QuerySet[EligibleAssignment], QuerySet[ActiveAssignment]]:
    """The role's current and future eligible and active assignments, for its detail page."""
    still_open = _still_open(at or timezone.now())
    related = ("user", "group")
    eligible = (
        EligibleAssignment.objects.filter(still_open, role=role)
        .select_related(*related)
        .order_by("starts_at")
    )
    active = (
        ActiveAssignment.objects.filter(still_open, role=role).select_related(*related).order_by("starts_at")
    )
    return eligible, active


def group_assignments(
    *, group: DirectoryGroup, at: datetime | None = None
) -> tuple[QuerySet[EligibleAssignment], QuerySet[ActiveAssignment]]:
    """The group's current and future eligible and active assignments (what joining it gives)."""
    still_open = _still_open(at or timezone.now())
    eligible = EligibleAssignment.objects.filter(still_open, group=group).select_related("role")
    active = ActiveAssignment.objects.filter(still_open, group=group).select_related("role")
    return eligible, active


def _still_open(at: datetime) -> Q:
    """Current or future: not past its end and not ended early."""
    return (Q(ends_at__isnull=True) | Q(ends_at__gt=at)) & Q(ended_at__isnull=True)


def eligible_get_for_manager(*, user: User, pk: uuid.UUID | str) -> EligibleAssignment:
    """An eligible assignment the user may manage, else 404 (as if it did not exist)."""
    assignment = EligibleAssignment.objects.select_related("role", "user", "group").filter(pk=pk).first()
    if assignment is None or not user_can_manage_eligible(user=user, role=assignment.role):
        raise Http404("No such assignment.")
    return assignment


def active_get_for_manager(*, user: User, pk: uuid.UUID | str) -> ActiveAssignment:
    assignment = ActiveAssignment.objects.select_related("role", "user", "group").filter(pk=pk).first()
    if assignment is None or not user_can_manage_active(user=user, role=assignment.role):
        raise Http404("No such assignment.")
    return assignment


def role_holders(
    *, role: Role, at: datetime | None = None
) -> tuple[QuerySet[EligibleAssignment], QuerySet[ActiveAssignment]]:
    """Current eligible and active assignments of the role whose principal can use them
    (an active user, or a group with at least one active member)."""
    at = at or timezone.now()
    usable = Q(user__is_active=True) | Q(
        group__in=DirectoryGroup.objects.filter(members__is_active=True).values("pk")
    )
    eligible = EligibleAssignment.objects.filter(role=role).current(at).filter(usable)
    active = ActiveAssignment.objects.filter(role=role).current(at).filter(usable)
    return eligible, active


def pim_administrators(*, at: datetime | None = None) -> QuerySet[User]:
    """People eligible for or holding the PIM Administrator role now (fallback approvers)."""
    at = at or timezone.now()
    role = portal_role(PIM_ADMINISTRATOR)
    eligible, active = role_holders(role=role, at=at)
    return User.objects.filter(
        Q(pk__in=eligible.values("user_id"))
        | Q(pk__in=active.values("user_id"))
        | Q(directory_groups__pk__in=eligible.values("group_id"))
        | Q(directory_groups__pk__in=active.values("group_id")),
        is_active=True,
    ).distinct()


# --- Administration in the portal (/manage/roles/) ---------------------------------------------

MANAGE_PAGE_SIZE = 25
PRINCIPAL_SEARCH_LIMIT = 10


def user_is_pim_administrator(*, user: User, at: datetime | None = None) -> bool:
    """Whether the user holds the PIM Administrator role right now (activated: eligibility
    alone is not enough; the break-glass superuser uses the Django admin)."""
    if not (user.is_authenticated and user.is_active):
        return False
    return role_holding(user=user, role=PIM_ADMINISTRATOR, at=at).active  # one query


# The Roles list's "Source" filter: its values and the kinds each keeps ("other": the rest).
ROLE_SOURCES: dict[str, tuple[str, ...]] = {
    "entra": (Role.Kind.ENTRA,),
    "group": (Role.Kind.GROUP,),
    "other": (),
}
_SOURCED_KINDS = [kind for kinds in ROLE_SOURCES.values() for kind in kinds]


def roles_for_administration(
    *,
    text: str = "",
    privileged: bool | None = None,
    has_eligible: bool | None = None,
    source: str = "",
    at: datetime | None = None,
) -> QuerySet[Role]:
    """The catalog for the Roles list: searched by name, template id or description, filtered,
    each role with its settings and whether anyone is eligible now (one query per page,
    whatever the number of roles or assignments). source (ROLE_SOURCES) keeps Entra directory
    roles, governed groups' member and owner roles, or every other role; anything else, all."""
    at = at or timezone.now()
    eligible_now = EligibleAssignment.objects.filter(role_id=OuterRef("pk")).current(at)
    roles = Role.objects.select_related("settings").annotate(has_eligible=Exists(eligible_now))
    if text:
        roles = roles.filter(
            Q(name__icontains=text) | Q(template_id__icontains=text) | Q(description__icontains=text)
        )
    if privileged is not None:
        roles = roles.filter(privileged=privileged)
    if has_eligible is not None:
        roles = roles.filter(has_eligible=has_eligible)
    if source in ROLE_SOURCES:
        kinds = ROLE_SOURCES[source]
        roles = roles.filter(kind__in=kinds) if kinds else roles.exclude(kind__in=_SOURCED_KINDS)
    return roles.order_by("name")


def role_get_for_administrator(*, user: User, pk: uuid.UUID | str) -> Role:
    """A role for the administration pages: PIM Administrators (role active) only, else 404."""
    if not user_is_pim_administrator(user=user):
        raise Http404("No such page.")
    role = Role.objects.select_related("settings").filter(pk=pk).first()
    if role is None:
        raise Http404("No such role.")
    return role


def people_search(*, text: str, limit: int = PRINCIPAL_SEARCH_LIMIT) -> QuerySet[User]:
    """Active people whose username, name or email contains the text (the pickers)."""
    text = text.strip()
    if not text:
        return User.objects.none()
    match = (
        Q(username__icontains=text)
        | Q(display_name__icontains=text)
        | Q(email__icontains=text)
        | Q(first_name__icontains=text)
        | Q(last_name__icontains=text)
    )
    return User.objects.filter(match, is_active=True).order_by("username")[:limit]


def groups_search(*, text: str, limit: int = PRINCIPAL_SEARCH_LIMIT) -> QuerySet[DirectoryGroup]:
    """Groups whose name or description contains the text (the pickers)."""
    text = text.strip()
    if not text:
        return DirectoryGroup.objects.none()
    match = Q(name__icontains=text) | Q(description__icontains=text)
    return DirectoryGroup.objects.filter(match).order_by("name")[:limit]
