"""Inviting people: an administrator adds a person and emails them a link, to set a password
and enrol an authenticator, or (single sign-on only) to link their provider account."""

from typing import Literal

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from audit.services import audit_record
from notifications.services import email_queue

from ..backends import password_login_mode
from ..models import User
from .shared import AccountError, _require_perm
from .users import user_create, user_update

InvitationKind = Literal["password", "sso"]


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    """Django's password-reset token, salted per kind: it hashes the password, the last sign-in
    and the session epoch, so it dies once used (a password set, a sign-in), or when the
    person is reset; and after PASSWORD_RESET_TIMEOUT."""

    def __init__(self, kind: InvitationKind) -> None:
        super().__init__()
        self.key_salt = f"accounts.invitation.{kind}"

    def _make_hash_value(self, user, timestamp):  # type: ignore[no-untyped-def]
        return f"{super()._make_hash_value(user, timestamp)}{user.session_epoch}{user.is_active}"


def invitation_token_generator(kind: InvitationKind) -> InvitationTokenGenerator:
    return InvitationTokenGenerator(kind)


def invitation_url(*, user: User, kind: InvitationKind) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = invitation_token_generator(kind).make_token(user)
    path = reverse("accounts:invitation_accept", kwargs={"kind": kind, "uidb64": uid, "token": token})
    return f"{settings.PIM_BASE_URL}{path}"


def user_invite(
    *,
    actor: User | None,
    username: str,
    email: str,
    display_name: str = "",
    manager: User | None = None,
    kind: InvitationKind = "password",
) -> User:
    """Add a person and email them their invitation link (after commit)."""
    _require_perm(actor, "accounts.add_user", "You may not invite people.", attempted="user_invite")
    if kind == "password" and password_login_mode() != "on":
        raise AccountError(
            {"kind": "Passwords are turned off (PIM_PASSWORD_LOGIN): invite for single sign-on."}
        )
    if kind == "sso" and not settings.PIM_OIDC_ENABLED:
        raise AccountError({"kind": "Single sign-on is not configured."})
    if not (email or "").strip():
        raise AccountError({"email": "An invitation needs an email address."})
    with transaction.atomic():
        user = user_create(
            actor=actor,
            username=username,
            display_name=display_name,
            email=email,
            origin={"source": "invitation"},
        )
        if manager is not None:
            user = user_update(actor=actor, user=user, changes={"manager": manager})
        _invitation_send(actor, user, kind)
    return user


def user_invitation_resend(*, actor: User | None, user: User, kind: InvitationKind = "password") -> None:
    """A new link for a person who has not accepted yet (the old one keeps working until used)."""
    _require_perm(actor, "accounts.add_user", "You may not invite people.", attempted="user_invite")
    if user.last_login is not None or user.has_usable_password():
        raise AccountError(f"{user} has already signed in.")
    with transaction.atomic():
        _invitation_send(actor, user, kind)


def _invitation_send(actor: User | None, user: User, kind: InvitationKind) -> None:
    email_queue(
        recipients=[user],
        template="invitation",
        context={"user": user, "kind": kind, "url": invitation_url(user=user, kind=kind), "inviter": actor},
    )
    audit_record(action="user.invited", actor=actor, target=user, details={"kind": kind, "email": user.email})


def user_invitation_accept(*, user: User, password: str) -> User:
    """The invited person chooses their password (validated by AUTH_PASSWORD_VALIDATORS)."""
    if password_login_mode() != "on":
        raise AccountError("Passwords are turned off: sign in with single sign-on.")
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise AccountError({"password": error.messages}) from None
    with transaction.atomic():
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if not locked.is_active:
            raise AccountError("This account is deactivated.")
        locked.set_password(password)
        locked.save(update_fields=["password"])
        audit_record(
            action="user.invitation_accepted", actor=locked, target=locked, details={"kind": "password"}
        )
    return locked
