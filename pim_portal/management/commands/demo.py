"""Idempotent demo data: people with TOTP devices, a manager chain, groups, eligibilities and
an access review.

The demo's passwords and TOTP secrets are published (printed here, in README), so it refuses to
run outside development (DJANGO_DEBUG) unless told in so many words, and it never touches an
account that it did not create itself: a demo account is one that carries the demo's own
"Demo authenticator" device, made in the same transaction as the account.
"""

import base64
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import DirectoryGroup, User
from alerts.services import alerts_evaluate_if_never
from reviews.models import ReviewDefinition
from reviews.services import review_definition_create, review_instances_start_due
from roles import services
from roles.models import ActiveAssignment, EligibleAssignment, Role

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed for the demo, never used in production

# username, display name, manager, TOTP key (hex; demo only, printed so anyone can sign in)
PEOPLE = [
    ("ada", "Ada Admin", None, "3132333435363738393031323334353637383930"),
    ("bob", "Bob Approver", "ada", "4142434445464748494a4b4c4d4e4f5051525354"),
    ("alice", "Alice Requester", "bob", "6162636465666768696a6b6c6d6e6f7071727374"),
    ("dave", "Dave Operator", "bob", "3031323334353637383961626364656667686970"),
    ("carol", "Carol Auditor", "ada", "7a797877767574737271706f6e6d6c6b6a696867"),
]
BREAK_GLASS = ("breakglass", "Break-glass account", "6a6b6c6d6e6f70717273747576777879303132333435")

GA = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
AZURE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
DEMO_SUBSCRIPTION = "/subscriptions/00000000-0000-4000-8000-000000000de0"
DEMO_REVIEW = "Quarterly review: Global and User Administrators"
DEMO_DEVICE = "Demo authenticator"
NOT_PRODUCTION_FLAG = "--i-know-this-is-not-production"


def foreign_accounts() -> list[str]:
    """Usernames the demo would use that belong to accounts it did not create."""
    usernames = [username for username, *_ in PEOPLE] + [BREAK_GLASS[0]]
    return sorted(
        User.objects.filter(username__in=usernames)
        .exclude(totpdevice__name=DEMO_DEVICE)
        .values_list("username", flat=True)
    )


def _role(template_id: str) -> Role:
    return Role.objects.get(template_id=template_id)


class Command(BaseCommand):
    help = "Load demo users, groups and eligibilities (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument("--codes", action="store_true", help="Print the demo users' current TOTP codes.")
        parser.add_argument(
            NOT_PRODUCTION_FLAG,
            action="store_true",
            dest="not_production",
            help="Run although DJANGO_DEBUG is off (the demo's secrets are public: never in production).",
        )

    def handle(self, *args, codes=False, not_production=False, **options):
        if not (settings.DEBUG or not_production):
            raise CommandError(
                "The demo publishes its passwords and TOTP secrets: it runs only with DJANGO_DEBUG=1 "
                f"or {NOT_PRODUCTION_FLAG}. Never load it into a production database."
            )
        if codes:
            self._print_codes()
            return
        with transaction.atomic():
            if taken := foreign_accounts():
                raise CommandError(
                    f"Accounts the demo did not create already use its usernames: {', '.join(taken)}. "
                    "The demo changes nothing; use a fresh database."
                )
            people = self._people()
            self._groups(people)
            self._assignments(people)
            self._review(people)
        # The first alert evaluation (migrate queues one too): the demo's alerts are there at once.
        alerts_evaluate_if_never()
        self._print_sign_ins()

    def _people(self) -> dict[str, User]:
        people: dict[str, User] = {}
        for username, name, manager, key in PEOPLE:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "display_name": name,
                    "email": f"{username}@demo.pim.test",
                    "manager": people.get(manager) if manager else None,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            TOTPDevice.objects.get_or_create(user=user, name=DEMO_DEVICE, defaults={"key": key})
            people[username] = user
        username, name, key = BREAK_GLASS
        glass, created = User.objects.get_or_create(
            username=username,
            defaults={"display_name": name, "is_superuser": True, "email": "breakglass@demo.pim.test"},
        )
        if created:
            glass.set_password(DEMO_PASSWORD)
            glass.save()
            static = StaticDevice.objects.create(user=glass, name="Recovery codes")
            static.token_set.create(token="breakglass01")  # noqa: S106 - demo recovery code
        TOTPDevice.objects.get_or_create(user=glass, name=DEMO_DEVICE, defaults={"key": key})
        return people

    def _groups(self, people):
        helpdesk, _ = DirectoryGroup.objects.get_or_create(
            name="Helpdesk", defaults={"description": "First-line support (demo group)"}
        )
        helpdesk.members.add(people["alice"], people["dave"])

    def _assignments(self, people):
        now = timezone.now()
        helpdesk = DirectoryGroup.objects.get(name="Helpdesk")
        pim_admin = Role.objects.get(kind=Role.Kind.APP, template_id="pim.administrator")
        pim_auditor = Role.objects.get(kind=Role.Kind.APP, template_id="pim.auditor")
        eligible = [
            (people["ada"], pim_admin, "/", None),
            (people["ada"], _role(GA), "/", None),
            (people["carol"], pim_auditor, "/", now + timedelta(days=180)),
            (people["alice"], _role(USER_ADMIN), "/", now + timedelta(days=90)),
            (people["alice"], _role(EXCHANGE_ADMIN), "/", now + timedelta(days=30)),
            (people["alice"], _role(AZURE_CONTRIBUTOR), DEMO_SUBSCRIPTION, now + timedelta(days=60)),
            (people["dave"], _role(SECURITY_READER), "/", now + timedelta(days=120)),
            (helpdesk, _role(HELPDESK_ADMIN), "/", now + timedelta(days=365)),
        ]
        for principal, role, scope, ends_at in eligible:
            field = "user" if isinstance(principal, User) else "group"
            exists = EligibleAssignment.objects.filter(**{field: principal}, role=role, scope=scope).current(
                now
            )
            if not exists.exists():
                services.eligible_assign(
                    actor=None,
                    role=role,
                    principal=principal,
                    scope=scope,
                    ends_at=ends_at,
                    justification="Demo data",
                )
        if not _role(USER_ADMIN).settings.require_approval:
            services.role_settings_update(
                actor=None,
                role=_role(USER_ADMIN),
                changes={"require_approval": True, "activation_max_duration": timedelta(hours=4)},
                approvers=[people["bob"]],
            )
        # Ada starts with the PIM Administrator role active so the admin works on day one.
        if not ActiveAssignment.objects.filter(user=people["ada"], role=pim_admin).current(now).exists():
            services.active_assign(
                actor=None,
                role=pim_admin,
                principal=people["ada"],
                ends_at=now + timedelta(hours=8),
                justification="Demo: initial administrator session",
            )

    def _review(self, people):
        """A quarterly review of the Global and User Administrator eligibilities by the
        principals' managers (Bob for Ada, who has none), started today so it shows items."""
        now = timezone.now()
        if not ReviewDefinition.objects.filter(name=DEMO_REVIEW).exists():
            review_definition_create(
                actor=None,
                roles=[_role(GA), _role(USER_ADMIN)],
                name=DEMO_REVIEW,
                description="Do our administrators still need to be eligible? Managers decide.",
                review_eligible=True,
                review_active=False,
                reviewer_type=ReviewDefinition.Reviewers.MANAGER,
                fallback_reviewer=people["bob"],
                recurrence=ReviewDefinition.Recurrence.QUARTERLY,
                start_date=now.date(),
                duration_days=14,
                justification_required=True,
                reminders=True,
                recommendations=True,
                inactivity_days=30,
                default_decision=ReviewDefinition.DefaultDecision.NO_CHANGE,
                auto_apply=True,
            )
        review_instances_start_due(now=now)  # idempotent: one run per occurrence

    def _print_sign_ins(self):
        out = self.stdout
        out.write(self.style.SUCCESS("Demo data ready."))
        out.write(f"Password for every demo account: {DEMO_PASSWORD}")
        out.write("Accounts (username — who — TOTP secret for an authenticator app):")
        for device in TOTPDevice.objects.filter(name=DEMO_DEVICE).select_related("user").order_by("user_id"):
            secret = base64.b32encode(device.bin_key).decode()
            out.write(f"  {device.user.username:<11} {device.user!s:<20} {secret}")
        out.write("Current TOTP codes: make codes")

    def _print_codes(self):
        for device in TOTPDevice.objects.filter(name=DEMO_DEVICE).select_related("user").order_by("user_id"):
            totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
            totp.time = timezone.now().timestamp()
            self.stdout.write(f"{device.user.username:<11} {totp.token():06d}")
