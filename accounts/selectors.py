"""Reads about accounts and their MFA devices. Always the given user's own devices: a device
id that is not the user's answers 404, so nobody can see or act on another person's devices."""

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import AbstractWebAuthnCredential
from django_otp_webauthn.utils import get_credential_model

from .models import User


def mfa_pending_device(*, user: User) -> TOTPDevice | None:
    """The authenticator the user is setting up and has not confirmed yet."""
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").last()


def mfa_devices_for_user(*, user: User) -> QuerySet[TOTPDevice]:
    devices: QuerySet[TOTPDevice] = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk")
    return devices  # (django-otp is untyped)


def recovery_codes_left(*, user: User) -> int:
    left: int = StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
    return left


def mfa_device_get_for_user(*, user: User, pk: int | str) -> TOTPDevice:
    """One of the user's own confirmed authenticators; 404 for anyone else's (or a bad id)."""
    if not str(pk).isdigit():
        raise Http404("No such authenticator app.")
    return get_object_or_404(TOTPDevice, user=user, confirmed=True, pk=int(pk))


def people_search(*, query: str = "") -> QuerySet[User]:
    """People for the administrators' list: by username, display name or email (contains,
    any case), with their manager and whether they have an authenticator, in one query."""
    people = (
        User.objects.select_related("manager")
        .annotate(
            has_mfa=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
            sso_links=Count("external_identities", distinct=True),
        )
        .order_by("username")
    )
    query = (query or "").strip()[:150]
    if query:
        people = people.filter(
            Q(username__icontains=query) | Q(display_name__icontains=query) | Q(email__icontains=query)
        )
    return people


def person_get(*, pk: int | str) -> User:
    if not str(pk).isdigit():
        raise Http404("No such person.")
    return get_object_or_404(User.objects.select_related("manager"), pk=int(pk))


def passkeys_for_user(*, user: User) -> QuerySet[AbstractWebAuthnCredential]:
    """The user's passkeys, oldest first."""
    model = get_credential_model()
    passkeys: QuerySet[AbstractWebAuthnCredential] = model.objects.filter(user=user, confirmed=True).order_by(
        "created_at", "pk"
    )
    return passkeys


def passkey_get_for_user(*, user: User, pk: int | str) -> AbstractWebAuthnCredential:
    """One of the user's own passkeys; 404 for anyone else's (or a bad id)."""
    if not str(pk).isdigit():
        raise Http404("No such passkey.")
    passkey: AbstractWebAuthnCredential = get_object_or_404(
        get_credential_model(), user=user, confirmed=True, pk=int(pk)
    )
    return passkey
