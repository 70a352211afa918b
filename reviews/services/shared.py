"""What the review services share: their refusal, the decision and outcome names, the
permission check."""

from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import User

from ..models import ReviewItem

Decision = ReviewItem.Decision

Outcome = ReviewItem.Outcome


class ReviewError(ValidationError):
    """A review action refused for a reason the person can act on."""


def _require_perm(actor: User | None, perm: str) -> None:
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied("You may not manage access reviews.")
