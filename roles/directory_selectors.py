"""Reads about an assignment's directory operations: what the directory (Entra) has of it."""

from dataclasses import dataclass
from datetime import datetime

from .models import ActiveAssignment, DirectoryOperation, Role

Op = DirectoryOperation


@dataclass(frozen=True)
class DirectoryStatus:
    """The latest grant or revoke of an assignment in the directory, as a page shows it."""

    state: str  # "sending", "waiting", "effective", "unconfirmed", "failed"
    operation: str  # "grant" or "revoke"
    at: datetime | None  # when it was accepted, became effective, or failed
    error: str = ""

    @property
    def label(self) -> str:
        granted = self.operation == Op.Operation.GRANT
        return {
            "sending": "Being sent to Entra" if granted else "Removal being sent to Entra",
            "waiting": "Waiting for Entra" if granted else "Waiting for Entra to remove it",
            "effective": "Effective in Entra" if granted else "Removed in Entra",
            "unconfirmed": "Not confirmed by Entra" if granted else "Removal not confirmed by Entra",
            "failed": "Entra refused it" if granted else "Entra refused the removal",
        }[self.state]


def assignment_directory_status(*, assignment: ActiveAssignment | None) -> DirectoryStatus | None:
    """For an Entra role's active assignment, the state of its latest directory operation; None
    for roles that live only in the portal, or when nothing was sent (one query)."""
    if assignment is None or assignment.role.kind not in (Role.Kind.ENTRA, Role.Kind.GROUP):
        return None
    op = (
        Op.objects.filter(assignment=assignment)
        .only("operation", "status", "effect", "completed_at", "effective_at", "last_error", "result")
        .order_by("-pk")
        .first()
    )
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
