"""Single sign-on: which person a provider's sign-in is (by the immutable subject alone),
linking, just-in-time creation, and refusals. accounts.sso does the OpenID Connect protocol."""

import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record

from ..models import ExternalIdentity, User
from .shared import AccountError
from .users import user_create


class SsoRefused(AccountError):
    """The provider signed the person in, but the portal does not let them in."""


def sso_identity_key(*, issuer: str, claims: dict[str, Any]) -> tuple[str, str, str]:
    """(issuer, subject, tenant) of a verified ID token: for Microsoft Entra ID (a token with
    ``tid`` and ``oid``) the object id within the tenant, which the directory sync keys on
    too; for any other provider ``sub``. Never an email or user name."""
    tenant = str(claims.get("tid") or "")
    object_id = str(claims.get("oid") or "")
    if tenant and object_id:
        return issuer, object_id, tenant
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("The provider sent no subject (sub) for this sign-in.", code="no_subject")
    return issuer, subject, ""


def sso_sign_in_resolve(*, issuer: str, claims: dict[str, Any], invited_user_id: int | None = None) -> User:
    """The person a verified sign-in is: the one linked to its (issuer, subject); else, the first
    time, the directory user with that Entra object id (same tenant), the invited person whose
    invitation link started this sign-in, or (PIM_OIDC_CREATE_USERS) a new person.

    Raises SsoRefused, audited as ``auth.sso_refused``, with a message for the person."""
    try:
        with transaction.atomic():
            return _resolve(issuer, claims, invited_user_id)
    except SsoRefused as refusal:
        audit_record(
            action="auth.sso_refused",
            target=str(claims.get("preferred_username") or claims.get("sub") or "")[:150],
            details={"issuer": issuer, "subject": _subject_or_blank(issuer, claims), "reason": refusal.code},
            outcome=AuditEvent.Outcome.FAILURE,
        )
        raise


def _subject_or_blank(issuer: str, claims: dict[str, Any]) -> str:
    try:
        return sso_identity_key(issuer=issuer, claims=claims)[1]
    except SsoRefused:
        return ""


def _resolve(issuer: str, claims: dict[str, Any], invited_user_id: int | None) -> User:
    issuer, subject, tenant = sso_identity_key(issuer=issuer, claims=claims)
    expected_tenant = settings.PIM_OIDC_ENTRA_TENANT_ID
    if expected_tenant and tenant.lower() != expected_tenant.lower():
        raise SsoRefused("This sign-in is from another Microsoft Entra tenant.", code="wrong_tenant")
    now = timezone.now()
    identity = (
        ExternalIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is None:
        identity = _link_first_time(issuer, subject, tenant, claims, invited_user_id)
    user = identity.user
    if not user.is_active:
        raise SsoRefused(
            "Your PIM Portal account is deactivated. Ask a PIM Administrator if you need it back.",
            code="deactivated",
        )
    ExternalIdentity.objects.filter(pk=identity.pk).update(last_sign_in_at=now)
    return user


def _link_first_time(
    issuer: str, subject: str, tenant: str, claims: dict[str, Any], invited_user_id: int | None
) -> ExternalIdentity:
    user, via = _existing_person(subject, tenant, invited_user_id)
    if user is None:
        if not settings.PIM_OIDC_CREATE_USERS:
            raise SsoRefused(
                "Your account is not linked to PIM Portal yet. Ask a PIM Administrator for an invitation.",
                code="not_linked",
            )
        user = _person_create(subject, tenant, claims)
        via = "created"
    elif ExternalIdentity.objects.filter(user=user, issuer=issuer).exists():
        raise SsoRefused(
            "Your PIM Portal account is already linked to another account at this provider.",
            code="linked_elsewhere",
        )
    try:
        with transaction.atomic():
            identity = ExternalIdentity.objects.create(
                user=user, issuer=issuer, subject=subject, tenant_id=tenant
            )
    except IntegrityError:
        raise SsoRefused("This sign-in is being linked already: try again.", code="race") from None
    audit_record(
        action="sso.linked",
        actor=user,
        target=user,
        details={"issuer": issuer, "subject": subject, "tenant_id": tenant, "via": via},
    )
    return identity


def _existing_person(subject: str, tenant: str, invited_user_id: int | None) -> tuple[User | None, str]:
    if tenant and settings.ENTRA_TENANT_ID and tenant.lower() == settings.ENTRA_TENANT_ID.lower():
        # The directory sync keyed this person on the same object id in the same tenant.
        user = User.objects.select_for_update(no_key=True).filter(external_id=subject).first()
        if user is not None:
            return user, "directory"
    if invited_user_id is not None:
        user = User.objects.select_for_update(no_key=True).filter(pk=invited_user_id).first()
        if user is not None:
            return user, "invitation"
    return None, ""


_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def _person_create(subject: str, tenant: str, claims: dict[str, Any]) -> User:
    """Just-in-time: a new person with no password, named after the claims (the name is a
    label only: the link, not the name, is what a later sign-in follows)."""
    base = _USERNAME_UNSAFE.sub("", str(claims.get("preferred_username") or claims.get("email") or ""))[:140]
    base = base or f"sso-{subject[:40]}"
    username = base
    for n in range(2, 100):
        if not User.objects.filter(username__iexact=username).exists():
            break
        username = f"{base}-{n}"
    email = str(claims.get("email") or "") if claims.get("email_verified", True) else ""
    try:
        return user_create(
            actor=None,
            username=username,
            display_name=str(claims.get("name") or "")[:256],
            email=email if "@" in email else "",
            origin={"source": "sso", "subject": subject, "tenant_id": tenant},
        )
    except AccountError:
        raise SsoRefused("Your PIM Portal account could not be created: ask a PIM Administrator.") from None
