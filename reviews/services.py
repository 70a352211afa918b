"""Access review services: definitions, starting runs in bulk, decisions, closing and applying.

Applying a denial removes the assignment through the same audited roles services an
administrator uses (ending any live activation of it).
"""

from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from audit.services import AuditEntry, audit_record, audit_record_many
from common.text import clean_text
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment, Role
from roles.selectors import pim_administrators
from roles.services import active_remove, eligible_remove

from .models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem
from .recurrence import latest_due_occurrence, occurrence_start

BULK_BATCH = 5000
Decision = ReviewItem.Decision
Outcome = ReviewItem.Outcome


class ReviewError(ValidationError):
    """A review action refused for a reason the person can act on."""


# --- Definitions ---------------------------------------------------------------------------

DEFINITION_FIELDS = (
    "name",
    "description",
    "review_eligible",
    "review_active",
    "reviewer_type",
    "fallback_reviewer",
    "recurrence",
    "start_date",
    "duration_days",
    "justification_required",
    "reminders",
    "recommendations",
    "inactivity_days",
    "default_decision",
    "auto_apply",
    "enabled",
)


def review_definition_create(
    *, actor: User | None, roles: list[Role], named_reviewers=(), **fields
) -> ReviewDefinition:
    _require_perm(actor, "reviews.add_reviewdefinition")
    definition = ReviewDefinition(created_by=actor)
    with transaction.atomic():
        _apply_definition_fields(definition, fields, roles, named_reviewers)
        audit_record(
            action="review_definition.created",
            actor=actor,
            target=definition,
            details={"after": _definition_snapshot(definition)},
        )
    return definition


def review_definition_update(
    *,
    actor: User | None,
    definition: ReviewDefinition,
    roles: list[Role] | None = None,
    named_reviewers=None,
    **fields,
) -> ReviewDefinition:
    _require_perm(actor, "reviews.change_reviewdefinition")
    with transaction.atomic():
        definition = ReviewDefinition.objects.select_for_update().get(pk=definition.pk)
        before = _definition_snapshot(definition)
        _apply_definition_fields(definition, fields, roles, named_reviewers)
        after = _definition_snapshot(definition)
        changes = {
            key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]
        }
        audit_record(
            action="review_definition.changed", actor=actor, target=definition, details={"changes": changes}
        )
    return definition


def _apply_definition_fields(definition, fields, roles, named_reviewers) -> None:
    unknown = set(fields) - set(DEFINITION_FIELDS)
    if unknown:
        raise ReviewError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    for field, value in fields.items():
        setattr(definition, field, value)
    definition.name = clean_text(definition.name, field="name", required=True, max_length=200)
    definition.description = clean_text(definition.description, field="description")
    errors = {}
    if not (definition.review_eligible or definition.review_active):
        errors["review_eligible"] = "Review eligible assignments, active assignments or both."
    if not 1 <= (definition.duration_days or 0) <= 180:
        errors["duration_days"] = "A review lasts between 1 and 180 days."
    if not 1 <= (definition.inactivity_days or 0) <= 365:
        errors["inactivity_days"] = "The inactivity window is between 1 and 365 days."
    if definition.start_date is None:
        errors["start_date"] = "A start date is required."
    if roles is not None and not roles:
        errors["roles"] = "Choose at least one role to review."
    if (
        definition.reviewer_type == ReviewDefinition.Reviewers.NAMED
        and named_reviewers is not None
        and not named_reviewers
    ):
        errors["named_reviewers"] = "Name at least one reviewer."
    if errors:
        raise ReviewError(errors)
    definition.save()
    if roles is not None:
        definition.roles.set(roles)
    if named_reviewers is not None:
        definition.named_reviewers.set(named_reviewers)


def _definition_snapshot(definition: ReviewDefinition) -> dict:
    snapshot = {
        field: getattr(definition, field) for field in DEFINITION_FIELDS if field != "fallback_reviewer"
    }
    snapshot["fallback_reviewer"] = (
        definition.fallback_reviewer.username if definition.fallback_reviewer_id else None
    )
    if definition.pk and not definition._state.adding:
        snapshot["roles"] = sorted(definition.roles.values_list("name", flat=True))
        snapshot["named_reviewers"] = sorted(definition.named_reviewers.values_list("username", flat=True))
    return snapshot


# --- Starting runs -------------------------------------------------------------------------


def review_instances_start_due(*, now: datetime | None = None) -> list[ReviewInstance]:
    """Start the current run of every enabled definition that has none yet (idempotent: one
    instance per occurrence, enforced by a unique constraint). Runs whose window passed while
    the portal was down are skipped rather than started late and applied blindly."""
    now = now or timezone.now()
    started = []
    for definition in ReviewDefinition.objects.filter(enabled=True):
        k = latest_due_occurrence(start=definition.start_date, recurrence=definition.recurrence, now=now)
        if k is None:
            continue
        starts_at = occurrence_start(start=definition.start_date, recurrence=definition.recurrence, k=k)
        if starts_at + timedelta(days=definition.duration_days) <= now:
            continue
        if ReviewInstance.objects.filter(definition=definition, occurrence=k).exists():
            continue
        instance = review_instance_start(definition=definition, occurrence=k, starts_at=starts_at, now=now)
        if instance is not None:
            started.append(instance)
    return started


def review_instance_start(
    *, definition: ReviewDefinition, occurrence: int, starts_at: datetime, now: datetime
) -> ReviewInstance | None:
    """Snapshot the assignments in scope as items, in bulk; None if another run won the race."""
    with transaction.atomic():
        definition = ReviewDefinition.objects.select_for_update().get(pk=definition.pk)
        if ReviewInstance.objects.filter(definition=definition, occurrence=occurrence).exists():
            return None
        instance = ReviewInstance.objects.create(
            definition=definition,
            occurrence=occurrence,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=definition.duration_days),
        )
        items, links = _snapshot_items(definition, instance, now)
        for start in range(0, len(items), BULK_BATCH):
            ReviewItem.objects.bulk_create(items[start : start + BULK_BATCH])
        for start in range(0, len(links), BULK_BATCH):
            ReviewerAssignment.objects.bulk_create(links[start : start + BULK_BATCH])
        instance.item_count = len(items)
        instance.save(update_fields=["item_count"])
        audit_record(
            action="review.started",
            target=instance,
            details={"definition": definition.name, "items": len(items), "ends_at": instance.ends_at},
            at=now,
        )
        reviewer_ids = {link.reviewer_id for link in links}
        email_queue(
            recipients=User.objects.filter(pk__in=reviewer_ids, is_active=True),
            template="review-started",
            context={"instance": instance, "definition": definition},
            now=now,
        )
    return instance


def _snapshot_items(definition, instance, now) -> tuple[list[ReviewItem], list[ReviewerAssignment]]:
    role_ids = list(definition.roles.values_list("pk", flat=True))
    rows = []
    fields = (
        "pk",
        "user_id",
        "group_id",
        "role_id",
        "scope",
        "user__manager_id",
        "user__last_sign_in_at",
        "user__username",
        "user__display_name",
        "group__name",
    )
    if definition.review_eligible:
        eligible = EligibleAssignment.objects.filter(role_id__in=role_ids).current(now)
        rows += [("eligible", row) for row in eligible.values_list(*fields)]
    if definition.review_active:
        # Direct (standing) active assignments; activations are short-lived and end by themselves.
        active = (
            ActiveAssignment.objects.filter(role_id__in=role_ids)
            .current(now)
            .exclude(origin=ActiveAssignment.Origin.ACTIVATION)
        )
        rows += [("active", row) for row in active.values_list(*fields)]
    owners = _owners_by_role(role_ids)
    named = list(definition.named_reviewers.filter(is_active=True).values_list("pk", flat=True))
    active_user_ids = set(User.objects.filter(is_active=True).values_list("pk", flat=True)) if rows else set()
    members = _members_by_group({row[2] for _, row in rows if row[2]})
    fallback = [definition.fallback_reviewer_id] if definition.fallback_reviewer_id in active_user_ids else []
    if not fallback:
        fallback = [user.pk for user in pim_administrators(at=now)]
    last_activation = (
        _last_activations(role_ids, definition.inactivity_days, now) if definition.recommendations else {}
    )
    items, links = [], []
    for kind, (
        pk,
        user_id,
        group_id,
        role_id,
        scope,
        manager_id,
        last_sign_in,
        username,
        display,
        group_name,
    ) in rows:
        item = ReviewItem(
            instance=instance,
            assignment_type=kind,
            eligible_id=pk if kind == "eligible" else None,
            active_id=pk if kind == "active" else None,
            user_id=user_id,
            group_id=group_id,
            principal_label=(f"{display} <{username}>" if display else username)
            if user_id
            else f"group {group_name}",
            role_id=role_id,
            scope=scope,
            last_sign_in_at=last_sign_in,
            last_activation_at=last_activation.get((user_id, role_id)),
        )
        if definition.recommendations and user_id:
            item.recommendation, item.recommendation_reason = _recommend(
                kind, item, definition.inactivity_days, now
            )
        candidates = _reviewers_for(definition, user_id, manager_id, owners.get(role_id, []), named)
        # Nobody reviews their own access (directly or through a group) unless the review is
        # a self-review of a user's own assignment.
        holders = {user_id} if user_id else members.get(group_id, set())
        self_review = definition.reviewer_type == ReviewDefinition.Reviewers.SELF and user_id
        reviewers = [r for r in candidates if r in active_user_ids and (self_review or r not in holders)]
        if not reviewers:
            reviewers = [r for r in fallback if r not in holders]
        items.append(item)
        links += [
            ReviewerAssignment(item=item, reviewer_id=reviewer) for reviewer in dict.fromkeys(reviewers)
        ]
    return items, links


def _owners_by_role(role_ids) -> dict:
    owners: dict = {}
    for role_id, user_id in Role.owners.through.objects.filter(role_id__in=role_ids).values_list(
        "role_id", "user_id"
    ):
        owners.setdefault(role_id, []).append(user_id)
    return owners


def _members_by_group(group_ids) -> dict:
    """Members of the groups under review: one query (they may not review the group)."""
    members: dict = {}
    if not group_ids:
        return members
    through = DirectoryGroup.members.through.objects.filter(directorygroup_id__in=group_ids)
    for group_id, user_id in through.values_list("directorygroup_id", "user_id"):
        members.setdefault(group_id, set()).add(user_id)
    return members


def _last_activations(role_ids, inactivity_days, now) -> dict:
    """The last activation start per (user, role): one grouped query, for recommendations."""
    since = now - timedelta(days=max(inactivity_days, 1) * 4)
    rows = (
        ActiveAssignment.objects.filter(
            role_id__in=role_ids,
            origin=ActiveAssignment.Origin.ACTIVATION,
            starts_at__gte=since,
            starts_at__lte=now,
        )
        .values("user_id", "role_id")
        .annotate(last=Max("starts_at"))
    )
    return {(row["user_id"], row["role_id"]): row["last"] for row in rows}


def _recommend(kind, item, inactivity_days, now) -> tuple[str, str]:
    window = timedelta(days=inactivity_days)
    if kind == "eligible":
        last, what = item.last_activation_at, "activated the role"
    else:
        last, what = item.last_sign_in_at, "signed in"
    if last is None or now - last > window:
        when = f"last on {last:%Y-%m-%d}" if last else "never in the window"
        return Decision.DENY, f"Has not {what} in the last {inactivity_days} days ({when})."
    return Decision.APPROVE, f"{what.capitalize()} on {last:%Y-%m-%d}."


def _reviewers_for(definition, user_id, manager_id, owner_ids, named) -> list:
    kind = definition.reviewer_type
    if kind == ReviewDefinition.Reviewers.SELF:
        return [user_id] if user_id else []
    if kind == ReviewDefinition.Reviewers.MANAGER:
        return [manager_id] if manager_id else []
    if kind == ReviewDefinition.Reviewers.OWNERS:
        return list(owner_ids)
    return list(named)


# --- Deciding ------------------------------------------------------------------------------


def review_item_decide(
    *, reviewer: User, item: ReviewItem, decision: str, justification: str = "", now: datetime | None = None
) -> ReviewItem:
    """Record (or change, until the run ends) a reviewer's decision on one item."""
    return review_items_decide(
        reviewer=reviewer, items=[item], decision=decision, justification=justification, now=now
    )[0]


def review_items_decide(
    *,
    reviewer: User,
    items: list[ReviewItem],
    decision: str,
    justification: str = "",
    now: datetime | None = None,
) -> list[ReviewItem]:
    """Decide several items at once (bulk approve / deny); one audit event per item."""
    now = now or timezone.now()
    if decision not in Decision.values:
        raise ReviewError({"decision": "Choose approve or deny."})
    if not reviewer.is_active:
        raise PermissionDenied("A deactivated account cannot review.")
    justification = clean_text(justification, field="justification")
    with transaction.atomic():
        locked = list(
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("instance__definition", "role")
            .filter(pk__in=[item.pk for item in items], reviewer_links__reviewer=reviewer)
            .order_by("pk")
        )
        if len(locked) != len({item.pk for item in items}):
            raise PermissionDenied("You are not a reviewer of every selected item.")
        entries = []
        for item in locked:
            instance = item.instance
            if instance.status != ReviewInstance.Status.ACTIVE or now >= instance.ends_at:
                raise ReviewError("This review has ended; decisions can no longer be changed.")
            if instance.definition.justification_required and not justification:
                raise ReviewError({"justification": "A justification is required for this review."})
            before = item.decision
            item.decision, item.justification, item.decided_by, item.decided_at = (
                decision,
                justification,
                reviewer,
                now,
            )
            entries.append(
                AuditEntry(
                    action="review.decided",
                    actor=reviewer,
                    target=item,
                    role=item.role,
                    scope=item.scope,
                    details={
                        "decision": decision,
                        "before": before,
                        "justification": justification,
                        "principal": item.principal_label,
                        "instance": str(instance.pk),
                    },
                )
            )
        ReviewItem.objects.bulk_update(locked, ["decision", "justification", "decided_by", "decided_at"])
        audit_record_many(entries=entries, at=now)
    return locked


# --- Ending and applying -------------------------------------------------------------------


def review_instances_close_due(*, now: datetime | None = None) -> int:
    """Close runs whose end has passed (claimed by a conditional update) and apply those set
    to apply automatically."""
    now = now or timezone.now()
    closed = 0
    for instance_id in ReviewInstance.objects.filter(
        status=ReviewInstance.Status.ACTIVE, ends_at__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            if not ReviewInstance.objects.filter(pk=instance_id, status=ReviewInstance.Status.ACTIVE).update(
                status=ReviewInstance.Status.CLOSED, closed_at=now
            ):
                continue  # another run closed it
            instance = ReviewInstance.objects.select_related("definition").get(pk=instance_id)
            audit_record(
                action="review.closed", target=instance, details={"items": instance.item_count}, at=now
            )
        closed += 1
        if instance.definition.auto_apply:
            review_instance_apply(actor=None, instance=instance, now=now)
    return closed


def review_instance_end_early(
    *, actor: User, instance: ReviewInstance, now: datetime | None = None
) -> ReviewInstance:
    """An administrator stops a run before its end; applied at once if the definition applies
    results automatically (else an administrator applies it with review_instance_apply)."""
    now = now or timezone.now()
    _require_perm(actor, "reviews.change_reviewdefinition")
    with transaction.atomic():
        if not ReviewInstance.objects.filter(pk=instance.pk, status=ReviewInstance.Status.ACTIVE).update(
            status=ReviewInstance.Status.CLOSED, closed_at=now, ends_at=now
        ):
            raise ReviewError("This review is not running.")
        instance.refresh_from_db()
        audit_record(action="review.ended_early", actor=actor, target=instance, at=now)
    if instance.definition.auto_apply:  # as review_instances_close_due would at the end
        review_instance_apply(actor=actor, instance=instance, now=now)
        instance.refresh_from_db()
    return instance


def review_instance_apply(
    *, actor: User | None, instance: ReviewInstance, now: datetime | None = None
) -> dict:
    """Carry out the results: deny (or an undecided item under `remove`, or a deny
    recommendation under `recommendation`) removes the assignment. Idempotent: applied items
    are skipped and a finished instance is not applied again."""
    now = now or timezone.now()
    if actor is not None:
        _require_perm(actor, "reviews.change_reviewdefinition")
    instance = ReviewInstance.objects.select_related("definition").get(pk=instance.pk)
    if instance.status == ReviewInstance.Status.ACTIVE:
        raise ReviewError("End the review before applying it.")
    if instance.status == ReviewInstance.Status.APPLIED:
        return {}
    counts: dict = {}
    pending = instance.items.filter(applied_at__isnull=True).select_related(
        "eligible", "active", "role", "user"
    )
    for item in pending.iterator(chunk_size=500):
        outcome = _apply_item(item, instance.definition, actor, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    with transaction.atomic():
        if ReviewInstance.objects.filter(pk=instance.pk, status=ReviewInstance.Status.CLOSED).update(
            status=ReviewInstance.Status.APPLIED, applied_at=now
        ):
            audit_record(
                action="review.applied", actor=actor, target=instance, details={"outcomes": counts}, at=now
            )
    return counts


def effective_decision(item: ReviewItem, definition: ReviewDefinition) -> str:
    """What applying does with the item: the reviewer's decision, else the default."""
    if item.decision:
        return item.decision
    default = definition.default_decision
    if default == ReviewDefinition.DefaultDecision.REMOVE:
        return Decision.DENY
    if default == ReviewDefinition.DefaultDecision.APPROVE:
        return Decision.APPROVE
    if default == ReviewDefinition.DefaultDecision.RECOMMENDATION and item.recommendation:
        return item.recommendation
    return ""


def _apply_item(item: ReviewItem, definition: ReviewDefinition, actor, now) -> str:
    with transaction.atomic():
        item = (
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("eligible", "active", "role", "decided_by", "instance__definition")
            .get(pk=item.pk)
        )
        if item.applied_at is not None:
            return item.outcome
        decision = effective_decision(item, definition)
        outcome, detail = Outcome.UNCHANGED, ""
        if decision == Decision.APPROVE:
            outcome = Outcome.KEPT
        elif decision == Decision.DENY:
            outcome, detail = _remove(item, definition, actor, now)
        item.applied_at, item.outcome, item.outcome_detail = now, outcome, detail[:300]
        item.save(update_fields=["applied_at", "outcome", "outcome_detail"])
        if outcome == Outcome.REMOVED and item.user_id:
            email_queue(recipients=[item.user], template="access-removed", context={"item": item}, now=now)
    return outcome


def _removal_reason(item: ReviewItem, definition: ReviewDefinition) -> str:
    """Why the assignment goes, for the audit log: the reviewer's denial and justification, or
    the review's rule for items nobody decided."""
    review = f'access review "{definition.name}"'
    if item.decision == Decision.DENY:
        who = item.decided_by.label if item.decided_by_id else "a reviewer"
        return f"Denied in {review} by {who}: {item.justification or 'no justification'}"
    if definition.default_decision == ReviewDefinition.DefaultDecision.RECOMMENDATION:
        return f"Not decided in {review}; removed on the recommendation: {item.recommendation_reason}"
    return f"Not decided in {review}, whose setting removes undecided access"


def _remove(item: ReviewItem, definition: ReviewDefinition, actor, now) -> tuple[str, str]:
    assignment = item.assignment
    if not assignment.is_current(now) and not (assignment.starts_at > now and assignment.ended_at is None):
        return Outcome.ALREADY_ENDED, ""
    reason = _removal_reason(item, definition)
    try:
        with transaction.atomic():
            if item.assignment_type == ReviewItem.AssignmentType.ELIGIBLE:
                eligible_remove(
                    actor=actor,
                    assignment=assignment,
                    reason=reason[:2000],
                    end_reason=EligibleAssignment.EndReason.REVIEW,
                    now=now,
                )
            else:
                active_remove(
                    actor=actor,
                    assignment=assignment,
                    reason=reason[:2000],
                    end_reason=ActiveAssignment.EndReason.REVIEW,
                    now=now,
                )
    except ValidationError as error:  # e.g. anti-lockout: recorded, never half-applied
        return Outcome.REFUSED, "; ".join(error.messages)
    except PermissionDenied as error:  # the applying administrator may not manage this role
        return Outcome.REFUSED, str(error)
    return Outcome.REMOVED, ""


def review_reminders_send_due(*, now: datetime | None = None) -> int:
    """Once per run, halfway through, remind reviewers who still have undecided items."""
    now = now or timezone.now()
    sent = 0
    candidates = ReviewInstance.objects.filter(
        status=ReviewInstance.Status.ACTIVE,
        reminder_sent_at__isnull=True,
        definition__reminders=True,
        ends_at__gt=now,
    ).select_related("definition")
    for instance in candidates:
        if now < instance.starts_at + (instance.ends_at - instance.starts_at) / 2:
            continue
        with transaction.atomic():
            if not ReviewInstance.objects.filter(pk=instance.pk, reminder_sent_at__isnull=True).update(
                reminder_sent_at=now
            ):
                continue
            reviewer_ids = ReviewerAssignment.objects.filter(
                item__instance=instance, item__decision=""
            ).values("reviewer_id")
            email_queue(
                recipients=User.objects.filter(pk__in=reviewer_ids, is_active=True),
                template="review-reminder",
                context={"instance": instance, "definition": instance.definition},
                now=now,
            )
        sent += 1
    return sent


def _require_perm(actor: User | None, perm: str) -> None:
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied("You may not manage access reviews.")
