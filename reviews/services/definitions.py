"""Review definitions: what is reviewed, by whom, how often and what happens to silence."""

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from accounts.models import User
from audit.services import audit_record
from common.text import clean_text
from roles.models import Role

from ..models import ReviewDefinition
from ..recurrence import shortest_interval_days
from .shared import ReviewError, _require_perm

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
    "end_date",
    "max_runs",
    "justification_required",
    "reminders",
    "recommendations",
    "inactivity_days",
    "default_decision",
    "auto_apply",
    "enabled",
)


def review_definition_create(
    *,
    actor: User | None,
    roles: list[Role],
    named_reviewers: Iterable[User] = (),
    owners: Iterable[User] = (),
    **fields: Any,
) -> ReviewDefinition:
    _require_perm(actor, "reviews.add_reviewdefinition", attempted="review_definition_create")
    definition = ReviewDefinition(created_by=actor)
    with transaction.atomic():
        _apply_definition_fields(definition, fields, roles, named_reviewers, owners)
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
    named_reviewers: Iterable[User] | None = None,
    owners: Iterable[User] | None = None,
    **fields: Any,
) -> ReviewDefinition:
    _require_perm(actor, "reviews.change_reviewdefinition", attempted="review_definition_update")
    with transaction.atomic():
        definition = ReviewDefinition.objects.select_for_update().get(pk=definition.pk)
        before = _definition_snapshot(definition)
        _apply_definition_fields(definition, fields, roles, named_reviewers, owners)
        after = _definition_snapshot(definition)
        changes = {
            key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]
        }
        audit_record(
            action="review_definition.changed", actor=actor, target=definition, details={"changes": changes}
        )
    return definition


def _apply_definition_fields(
    definition: ReviewDefinition,
    fields: dict[str, Any],
    roles: list[Role] | None,
    named_reviewers: Iterable[User] | None,
    owners: Iterable[User] | None = None,
) -> None:
    unknown = set(fields) - set(DEFINITION_FIELDS)
    if unknown:
        raise ReviewError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    for field, value in fields.items():
        setattr(definition, field, value)
    definition.name = clean_text(definition.name, field="name", required=True, max_length=200)
    definition.description = clean_text(definition.description, field="description")
    errors: dict[str, str] = {}
    if not (definition.review_eligible or definition.review_active):
        errors["review_eligible"] = "Review eligible assignments, active assignments or both."
    if not 1 <= (definition.duration_days or 0) <= 180:
        errors["duration_days"] = "A review lasts between 1 and 180 days."
    if not 1 <= (definition.inactivity_days or 0) <= 365:
        errors["inactivity_days"] = "The inactivity window is between 1 and 365 days."
    if definition.start_date is None:
        errors["start_date"] = "A start date is required."
    errors.update(_recurrence_errors(definition))
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
    if owners is not None:
        definition.owners.set(owners)


def _recurrence_errors(definition: ReviewDefinition) -> dict[str, str]:
    """A run may not outlast the gap to the next one; a series ends on a date or after a
    number of runs (or never), not both."""
    errors: dict[str, str] = {}
    interval = shortest_interval_days(definition.recurrence)
    if interval is not None and (definition.duration_days or 0) > interval:
        errors["duration_days"] = (
            f"A {definition.get_recurrence_display().lower()} review starts a new run every "
            f"{interval} days at the shortest, so a run may last at most {interval} days "
            f"(not {definition.duration_days}). Shorten the run or choose a longer recurrence."
        )
    if definition.end_date is not None and definition.max_runs is not None:
        errors["max_runs"] = "End the series on a date or after a number of runs, not both."
    if definition.max_runs is not None and not 1 <= definition.max_runs <= 1000:
        errors["max_runs"] = "The number of runs is between 1 and 1000."
    if (
        definition.end_date is not None
        and definition.start_date
        and definition.end_date < definition.start_date
    ):
        errors["end_date"] = "The series cannot end before its first run starts."
    return errors


def _definition_snapshot(definition: ReviewDefinition) -> dict[str, Any]:
    snapshot = {
        field: getattr(definition, field) for field in DEFINITION_FIELDS if field != "fallback_reviewer"
    }
    snapshot["fallback_reviewer"] = (
        definition.fallback_reviewer.username if definition.fallback_reviewer is not None else None
    )
    if definition.pk and not definition._state.adding:
        snapshot["roles"] = sorted(definition.roles.values_list("name", flat=True))
        snapshot["named_reviewers"] = sorted(definition.named_reviewers.values_list("username", flat=True))
        snapshot["owners"] = sorted(definition.owners.values_list("username", flat=True))
    return snapshot
