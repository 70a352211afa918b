"""What the review services share: their refusal, the decision and outcome names, the
permission check."""

from django.core.exceptions import ValidationError

from accounts.models import User
from audit.refusals import audit_permission_denied

from ..models import ReviewItem

Decision = ReviewItem.Decision

Outcome = ReviewItem.Outcome


class ReviewError(ValidationError):
    """A review action refused for a reason the person can act on."""


def _require_perm(actor: User | None, perm: str, *, attempted: str) -> None:
    if actor is not None and not actor.has_perm(perm):
        raise audit_permission_denied(
            actor=actor, attempted=attempted, permission=perm, message="You may not manage access reviews."
        )
