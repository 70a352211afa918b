"""manage.py api_token create|list|revoke: API tokens from the command line (service accounts,
automation). On create the secret is printed once, alone on standard output (everything else
goes to standard error), so `TOKEN=$(manage.py api_token create …)` works."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import User
from api import services
from api.models import ApiToken


class Command(BaseCommand):
    help = "Create, list or revoke REST API tokens."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        create = commands.add_parser("create", help="Make a token and print its secret (once).")
        create.add_argument("--user", required=True, help="The username the token acts as.")
        create.add_argument("--name", required=True, help="What the token is for.")
        create.add_argument("--expires-days", type=int, help="Expire after this many days (default: never).")
        create.add_argument(
            "--service-account",
            action="store_true",
            help="Create the user if missing, as a service account (no password, no sign-in to the portal).",
        )
        create.add_argument(
            "--checker",
            action="store_true",
            help="Give the user a permanent active assignment of PIM Role Checker (GET /api/v1/check/).",
        )
        listing = commands.add_parser("list", help="List tokens (never their secrets).")
        listing.add_argument("--user", help="Only this user's tokens.")
        revoke = commands.add_parser("revoke", help="Revoke a token by its id or prefix.")
        revoke.add_argument("token", help="The token's id, or its prefix (the 12 characters after pim_).")

    def handle(self, *args, command, **options):
        try:
            getattr(self, f"_{command}")(**options)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        except PermissionDenied as error:  # the break-glass account has no tokens
            raise CommandError(str(error)) from None

    def _create(self, *, user, name, expires_days, service_account, checker, **options):
        if service_account:
            account, created = services.service_account_ensure(username=user)
            if created:
                self.stderr.write(f"Created service account {account.username}.")
        else:
            account = _user(user)
        if checker and services.role_checker_grant(user=account) is not None:
            self.stderr.write(f"{account.username} now holds PIM Role Checker (permanent).")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        token, secret = services.api_token_create(actor=None, user=account, name=name, expires_at=expires_at)
        self.stderr.write(f"Token {token.pk} for {account.username}; the secret is shown only now:")
        self.stdout.write(secret)

    def _list(self, *, user, **options):
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "-created_at")
        if user:
            tokens = tokens.filter(user=_user(user))
        now = timezone.now()
        for token in tokens:
            expires = f"{token.expires_at:%Y-%m-%d %H:%M}" if token.expires_at else "never"
            last = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk}  {token.display_prefix:<20} {token.user.username:<20} {token.status(now):<8} "
                f"expires {expires:<16} last used {last:<16} {token.name}"
            )

    def _revoke(self, *, token, **options):
        found = ApiToken.objects.filter(prefix=token).first()
        if found is None:
            try:
                found = ApiToken.objects.filter(pk=token).first()
            except ValidationError:
                found = None
        if found is None:
            raise CommandError(f"No token {token}.")
        services.api_token_revoke(actor=None, token=found)
        self.stdout.write(f"Revoked {found}.")


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username}.")
    return user
