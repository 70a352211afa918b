"""What the account services share: their refusal and the permission check."""

from django.core.exceptions import PermissionDenied, ValidationError

from ..models import User


class AccountError(ValidationError):
    """The account's current state does not allow the change (e.g. already deactivated)."""


def _require_perm(actor: User | None, perm: str, message: str = "You may not change this account.") -> None:
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied(message)
