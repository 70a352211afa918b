"""Reads about an assignment's directory operations: what the directory (Entra) has of it."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .directory import in_directory
from .models import ActiveAssignment, DirectoryOperation, EligibleAssignment

Op = DirectoryOperation
# After these the directory should show nothing of the assignment.
_REMOVALS = (Op.Operation.REVOKE, Op.Operation.ELIGIBLE_REMOVE)
_FIELDS = ("operation", "status", "effect", "completed_at", "effective_at", "last_error", "result")


@dataclass(frozen=True)
class DirectoryStatus:
    """The latest directory operation of an active assignment (grant or revoke) or of an
    eligibility (assign, change or remove), as a page shows it."""

    state: str  # "sending", "waiting", "effective", "unconfirmed", "failed"
    operation: str  # a DirectoryOperation.Operation
    at: datetime | None  # when it was accepted, became effective, or failed
    error: str = ""

    @property
    def label(self) -> str:
        granted = self.operation not in _REMOVALS
        return {
            "sending": "Being sent to Entra" if granted else "Removal being sent to Entra",
            "waiting": "Waiting for Entra" if granted else "Waiting for Entra to remove it",
            "effective": "Effective in Entra" if granted else "Removed in Entra",
            "unconfirmed": "Not confirmed by Entra" if granted else "Removal not confirmed by Entra",
            "failed": "Entra refused it" if granted else "Entra refused the removal",
        }[self.state]


def assignment_directory_status(
    *, assignment: ActiveAssignment | EligibleAssignment | None
) -> DirectoryStatus | None:
    """For an active assignment or eligibility the directory holds too (roles.directory.
    in_directory), the state of its latest directory operation; None for roles that live
    only in the portal, or when nothing was sent (one query)."""
    if assignment is None or not in_directory(assignment):
        return None
    field = "eligible" if isinstance(assignment, EligibleAssignment) else "assignment"
    op = Op.objects.filter(**{field: assignment}).only(*_FIELDS).order_by("-pk").first()
    return _status(op)


def directory_statuses(
    *, assignments: Iterable[ActiveAssignment | EligibleAssignment]
) -> dict[object, DirectoryStatus]:
    """assignment_directory_status of many assignments of one kind or both (My roles, a
    role's page), by assignment id, in a query per kind; those of the portal's own roles, or
    never sent, are left out."""
    wanted: dict[str, list] = {"eligible_id": [], "assignment_id": []}
    for a in assignments:
        if in_directory(a):
            wanted["eligible_id" if isinstance(a, EligibleAssignment) else "assignment_id"].append(a.pk)
    latest: dict[object, DirectoryStatus | None] = {}
    for field, ids in wanted.items():
        if not ids:
            continue
        ops = Op.objects.filter(**{f"{field}__in": ids}).only(field, *_FIELDS).order_by(field, "-pk")
        for op in ops:
            latest.setdefault(getattr(op, field), _status(op))
    return {pk: status for pk, status in latest.items() if status is not None}


def _status(op: DirectoryOperation | None) -> DirectoryStatus | None:
    if op is None or "skipped" in op.result:
        return None
    if op.status == Op.Status.PENDING:
        return DirectoryStatus("sending", op.operation, None)
    if op.status == Op.Status.FAILED:
        return DirectoryStatus("failed", op.operation, op.completed_at, op.last_error)
    if op.effect == Op.Effect.EFFECTIVE:
        return DirectoryStatus("effective", op.operation, op.effective_at)
    if op.effect == Op.Effect.UNCONFIRMED:
        return DirectoryStatus("unconfirmed", op.operation, op.completed_at)
    if op.effect == Op.Effect.WAITING:
        return DirectoryStatus("waiting", op.operation, op.completed_at)
    return None  # accepted by a directory that cannot confirm
