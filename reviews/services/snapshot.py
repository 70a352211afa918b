"""A run's snapshot, set-based: its items, with their last use and the recommendation, and
their reviewer links, each written by one INSERT ... SELECT (a handful of statements whatever
the number of items; no row travels through Python, no model instance is built).

The rules are those the review has always had:
- items: the current eligible assignments of the reviewed roles and, for active ones, the
  current standing assignments (activations end by themselves), of users and of groups, the
  deactivated users' included (their access is what a review should catch);
- last use: the latest sign-in from any source and its source (accounts.models.latest_sign_in,
  the portal winning a tie), and the last activation of the role in four inactivity windows;
- recommendation (users only): deny when the last activation (eligible) or sign-in (active)
  is missing or older than the inactivity window, approve otherwise, with the reason worded as
  before (the sign-in's source named in brackets);
- reviewers: the rule's candidates (manager / self / role owners / named) who are active and
  do not hold the access themselves (directly or as a member of the group), except in a
  self-review; an item left without one goes to the fallback reviewer, or the PIM
  Administrators, minus its holders.
"""

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat

from accounts.models import DirectoryGroup, SignInSource, User
from common.db import compiled_select, db_value, sql_random_uuid, sql_utc_date_text
from roles.models import ActiveAssignment, EligibleAssignment, Role

from ..models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem
from .shared import Decision

Reviewers = ReviewDefinition.Reviewers


def items_insert(*, definition: ReviewDefinition, instance: ReviewInstance, now: datetime) -> int:
    """Insert the run's items (one statement per assignment kind); how many were inserted."""
    role_ids = list(definition.roles.values_list("pk", flat=True))
    inserted = 0
    if definition.review_eligible:
        eligible = EligibleAssignment.objects.filter(role_id__in=role_ids).current(now)
        inserted += _items_insert_from(eligible, "eligible", definition, instance, now)
    if definition.review_active:
        active = (
            ActiveAssignment.objects.filter(role_id__in=role_ids)
            .current(now)
            .exclude(origin=ActiveAssignment.Origin.ACTIVATION)
        )
        inserted += _items_insert_from(active, "active", definition, instance, now)
    return inserted


def links_insert(*, definition: ReviewDefinition, instance: ReviewInstance, fallback: list[int]) -> None:
    """Link each item of the run to its reviewers: the rule's candidates, then the fallback
    reviewers for the items left without one."""
    _links_insert(*_candidates_select(definition, instance))
    if fallback:
        _links_insert(_fallback_select(len(fallback)), [*fallback, _instance_id(instance)])


# --- Items ---------------------------------------------------------------------------------


def _latest_sign_in() -> tuple[Case, Case]:
    """latest_sign_in's rule as SQL: the latest of the three, the portal winning a tie, then
    Entra's interactive sign-in; (moment, source)."""
    portal, directory, background = (
        "user__last_sign_in_at",
        "user__directory_sign_in_at",
        "user__directory_non_interactive_sign_in_at",
    )

    def not_before(one: str, other: str) -> Q:
        return Q(**{f"{other}__isnull": True}) | Q(**{f"{one}__gte": F(other)})

    portal_wins = (
        Q(**{f"{portal}__isnull": False}) & not_before(portal, directory) & not_before(portal, background)
    )
    directory_wins = Q(**{f"{directory}__isnull": False}) & not_before(directory, background)
    moment = Case(
        When(portal_wins, then=F(portal)),
        When(directory_wins, then=F(directory)),
        default=F(background),
        output_field=DateTimeField(),
    )
    source = Case(
        When(portal_wins, then=Value(SignInSource.PORTAL.value)),
        When(directory_wins, then=Value(SignInSource.DIRECTORY.value)),
        When(
            Q(**{f"{background}__isnull": False}),
            then=Value(SignInSource.DIRECTORY_NON_INTERACTIVE.value),
        ),
        default=Value(""),
        output_field=CharField(),
    )
    return moment, source


def _principal_label() -> Case:
    """'Display Name <username>' (the username alone without a display name), 'group Name'."""
    user_label = Case(
        When(user__display_name="", then=F("user__username")),
        default=Concat(F("user__display_name"), Value(" <"), F("user__username"), Value(">")),
        output_field=CharField(),
    )
    return Case(
        When(user_id__isnull=False, then=user_label),
        default=Concat(Value("group "), F("group__name")),
        output_field=CharField(),
    )


def _items_insert_from(
    assignments: QuerySet[EligibleAssignment] | QuerySet[ActiveAssignment],
    kind: str,
    definition: ReviewDefinition,
    instance: ReviewInstance,
    now: datetime,
) -> int:
    sign_in_at, sign_in_source = _latest_sign_in()
    last_activation: Subquery | Cast
    if definition.recommendations:
        since = now - timedelta(days=max(definition.inactivity_days, 1) * 4)
        last_activation = Subquery(
            ActiveAssignment.objects.filter(
                user_id=OuterRef("user_id"),
                role_id=OuterRef("role_id"),
                origin=ActiveAssignment.Origin.ACTIVATION,
                starts_at__gte=since,
                starts_at__lte=now,
            )
            .order_by("-starts_at")
            .values("starts_at")[:1],
            output_field=DateTimeField(),
        )
    else:
        # typed: PostgreSQL gives a bare NULL in a subquery the type text
        last_activation = Cast(Value(None), output_field=DateTimeField())
    snapshot = assignments.order_by().values(
        s_id=F("pk"),
        s_user=F("user_id"),
        s_group=F("group_id"),
        s_role=F("role_id"),
        s_scope=F("scope"),
        s_label=_principal_label(),
        s_sign_in_at=sign_in_at,
        s_sign_in_source=sign_in_source,
        s_activation=last_activation,
    )
    inner_sql, inner_params, aliases = compiled_select(snapshot)
    if not {"s_id", "s_user", "s_activation"} <= set(aliases):  # the outer statement names them
        raise RuntimeError(f"unexpected snapshot columns: {aliases}")
    recommendation, reason, rule_params = _recommendation_sql(kind, definition, now)
    if connection.vendor == "postgresql":
        # A fence: flattened into the outer query, the last-activation subquery would run once
        # for each place the recommendation and its reason name it (seven times per item).
        inner_sql += " OFFSET 0"
    quote = connection.ops.quote_name
    columns = {
        "id": sql_random_uuid(),
        "instance_id": "%s",
        "assignment_type": "%s",
        "eligible_id": "s.s_id" if kind == "eligible" else "NULL",
        "active_id": "s.s_id" if kind == "active" else "NULL",
        "user_id": "s.s_user",
        "group_id": "s.s_group",
        "principal_label": "s.s_label",
        "role_id": "s.s_role",
        "scope": "s.s_scope",
        "last_activation_at": "s.s_activation",
        "last_sign_in_at": "s.s_sign_in_at",
        "last_sign_in_source": "s.s_sign_in_source",
        "recommendation": recommendation,
        "recommendation_reason": reason,
        "decision": "''",
        "from_recommendation": "%s",
        "justification": "''",
        "outcome": "''",
        "outcome_detail": "''",
    }
    sql = (
        f"INSERT INTO {quote(ReviewItem._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - names and fragments of ours, values bound
        f"SELECT {', '.join(columns.values())} FROM ({inner_sql}) s"
    )
    # The parameters in the order their placeholders appear: the select list, then the inner query.
    params = [_instance_id(instance), kind, *rule_params, False, *inner_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _recommendation_sql(kind: str, definition: ReviewDefinition, now: datetime) -> tuple[str, str, list[Any]]:
    """The recommendation and its reason as SQL over the snapshot's columns, with their
    parameters (recommendation's first, then reason's); empty for groups, or when the review
    makes none."""
    if not definition.recommendations:
        return "''", "''", []
    days = definition.inactivity_days
    cutoff = db_value(ReviewItem, "last_sign_in_at", now - timedelta(days=days))
    if kind == "eligible":
        last, what = "s.s_activation", "activated the role"
    else:
        last, what = "s.s_sign_in_at", "signed in"
    day = sql_utc_date_text(last)
    # A sign-in's date names its source (portal or Entra); an activation's is the portal's own.
    seen, seen_params = "''", []
    if kind != "eligible":
        labels = {str(source.value): f" ({source.label})" for source in SignInSource}
        seen = f"CASE s.s_sign_in_source {' '.join('WHEN %s THEN %s' for _ in labels)} ELSE '' END"
        seen_params = [value for pair in labels.items() for value in pair]
    recommendation = (
        f"CASE WHEN s.s_user IS NULL THEN '' WHEN {last} IS NULL OR {last} < %s THEN %s ELSE %s END"
    )
    reason = (
        "CASE WHEN s.s_user IS NULL THEN '' "
        f"WHEN {last} IS NULL THEN %s "
        f"WHEN {last} < %s THEN %s || {day} || {seen} || ').' "
        f"ELSE %s || {day} || {seen} || '.' END"
    )
    params = [
        cutoff,
        str(Decision.DENY),
        str(Decision.APPROVE),
        f"Has not {what} in the last {days} days (never in the window).",
        cutoff,
        f"Has not {what} in the last {days} days (last on ",
        *seen_params,
        f"{what.capitalize()} on ",
        *seen_params,
    ]
    return recommendation, reason, params


# --- Reviewer links ------------------------------------------------------------------------


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "item": quote(ReviewItem._meta.db_table),
        "link": quote(ReviewerAssignment._meta.db_table),
        "user": quote(User._meta.db_table),
        "members": quote(DirectoryGroup.members.through._meta.db_table),
        "owners": quote(Role.owners.through._meta.db_table),
        "named": quote(ReviewDefinition.named_reviewers.through._meta.db_table),
    }


def _not_a_holder(reviewer: str) -> str:
    """The reviewer neither is the item's user nor belongs to its group."""
    t = _tables()
    return (
        f"(i.user_id IS NULL OR {reviewer} <> i.user_id) AND (i.group_id IS NULL OR NOT EXISTS "  # noqa: S608 - names and fragments of ours, values bound
        f"(SELECT 1 FROM {t['members']} m WHERE m.directorygroup_id = i.group_id AND m.user_id = {reviewer}))"
    )


def _candidates_select(definition: ReviewDefinition, instance: ReviewInstance) -> tuple[str, list[Any]]:
    """(item, reviewer) for the rule's active candidates, and the statement's parameters."""
    t = _tables()
    run = _instance_id(instance)
    kind = definition.reviewer_type
    if kind == Reviewers.SELF:  # a self-review: the holder is the reviewer
        sql = (
            f"SELECT i.id, i.user_id FROM {t['item']} i JOIN {t['user']} r ON r.id = i.user_id "  # noqa: S608 - names and fragments of ours, values bound
            "WHERE i.instance_id = %s AND r.is_active = %s"
        )
        return sql, [run, True]
    if kind == Reviewers.MANAGER:
        sql = (
            f"SELECT i.id, u.manager_id FROM {t['item']} i JOIN {t['user']} u ON u.id = i.user_id "  # noqa: S608 - names and fragments of ours, values bound
            f"JOIN {t['user']} r ON r.id = u.manager_id "
            "WHERE i.instance_id = %s AND r.is_active = %s AND u.manager_id <> i.user_id"
        )
        return sql, [run, True]
    if kind == Reviewers.OWNERS:
        sql = (
            f"SELECT i.id, o.user_id FROM {t['item']} i JOIN {t['owners']} o ON o.role_id = i.role_id "  # noqa: S608 - names and fragments of ours, values bound
            f"JOIN {t['user']} r ON r.id = o.user_id "
            f"WHERE i.instance_id = %s AND r.is_active = %s AND {_not_a_holder('o.user_id')}"
        )
        return sql, [run, True]
    sql = (
        f"SELECT i.id, n.user_id FROM {t['item']} i "  # noqa: S608 - names and fragments of ours, values bound
        f"JOIN {t['named']} n ON n.reviewdefinition_id = %s JOIN {t['user']} r ON r.id = n.user_id "
        f"WHERE i.instance_id = %s AND r.is_active = %s AND {_not_a_holder('n.user_id')}"
    )
    return sql, [db_value(ReviewDefinition, "id", definition.pk), run, True]


def _fallback_select(count: int) -> str:
    """(item, fallback reviewer) for the run's items that have no reviewer yet."""
    t = _tables()
    ids = ", ".join(["%s"] * count)
    return (
        f"SELECT i.id, r.id FROM {t['item']} i JOIN {t['user']} r ON r.id IN ({ids}) "  # noqa: S608 - names and fragments of ours, values bound
        f"WHERE i.instance_id = %s AND NOT EXISTS (SELECT 1 FROM {t['link']} l WHERE l.item_id = i.id) "
        f"AND {_not_a_holder('r.id')}"
    )


def _links_insert(select_sql: str, params: list[Any]) -> None:
    table = _tables()["link"]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (item_id, reviewer_id) {select_sql}", params)


def _instance_id(instance: ReviewInstance) -> object:
    return db_value(ReviewInstance, "id", instance.pk)
