"""factory_boy factories shared by every app's tests."""

from datetime import timedelta

import factory
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import DirectoryGroup, User
from roles.models import ActiveAssignment, EligibleAssignment, Role, RoleSettings

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    display_name = factory.LazyAttribute(lambda u: u.username.title())
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class DirectoryGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DirectoryGroup

    name = factory.Sequence(lambda n: f"Group {n}")


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Test Role {n}")
    kind = Role.Kind.APP
    privileged = True
    tier = Role.Tier.HIGH

    @factory.post_generation
    def role_settings(obj, create, extracted, **kwargs):
        if create:
            RoleSettings.objects.get_or_create(role=obj, defaults=kwargs)


class EligibleAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EligibleAssignment

    user = factory.SubFactory(UserFactory)
    role = factory.SubFactory(RoleFactory)
    scope = "/"
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=90))


class ActiveAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActiveAssignment

    user = factory.SubFactory(UserFactory)
    role = factory.SubFactory(RoleFactory)
    scope = "/"
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=4))


def totp_device(user, *, confirmed=True) -> TOTPDevice:
    """A TOTP device with a random key, as enrolment would create it."""
    return TOTPDevice.objects.create(user=user, name="Authenticator", confirmed=confirmed)


def totp_code(device: TOTPDevice, *, at=None) -> str:
    """The code an authenticator app would show for the device at `at` (default: now)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = (at or timezone.now()).timestamp()
    return f"{totp.token():0{device.digits}d}"


def portal_role(template_id: str) -> Role:
    return Role.objects.get(kind=Role.Kind.APP, template_id=template_id)
