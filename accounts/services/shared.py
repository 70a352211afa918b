"""What the account services share: their refusal and the permission check."""

from django.core.exceptions import ValidationError

from audit.refusals import audit_permission_denied

from ..models import User


class AccountError(ValidationError):
    """The account's current state does not allow the change (e.g. already deactivated)."""


def _require_perm(
    actor: User | None, perm: str, message: str = "You may not change this account.", *, attempted: str
) -> None:
    if actor is not None and not actor.has_perm(perm):
        raise audit_permission_denied(actor=actor, attempted=attempted, permission=perm, message=message)
