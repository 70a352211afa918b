"""manage.py demo: idempotent demo data for development, never for production."""

import pytest
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import DirectoryGroup, User
from audit.models import AuditEvent
from reviews.models import ReviewDefinition, ReviewInstance
from roles.models import EligibleAssignment
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def development(settings):
    settings.DEBUG = True  # as `make run` and `make codes` run it (DJANGO_DEBUG=1)


def test_demo_is_idempotent_and_prints_sign_ins(development, capsys):
    call_command("demo")
    counts = (User.objects.count(), EligibleAssignment.objects.count(), DirectoryGroup.objects.count())
    events = AuditEvent.objects.count()
    call_command("demo")
    assert (
        User.objects.count(),
        EligibleAssignment.objects.count(),
        DirectoryGroup.objects.count(),
    ) == counts
    assert AuditEvent.objects.count() == events
    output = capsys.readouterr().out
    assert "alice" in output and "make codes" in output
    alice = User.objects.get(username="alice")
    assert alice.manager.username == "bob" and alice.manager.manager.username == "ada"
    assert EligibleAssignment.objects.filter(group__name="Helpdesk").exists()
    assert User.objects.get(username="breakglass").is_superuser


def test_demo_codes_prints_a_current_code_per_user(development, capsys):
    call_command("demo")
    capsys.readouterr()
    call_command("demo", "--codes")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    assert all(line.split()[1].isdigit() and len(line.split()[1]) == 6 for line in lines)


def test_the_demo_starts_a_quarterly_manager_review_once(development, capsys):
    call_command("demo")
    events = AuditEvent.objects.count()
    call_command("demo")
    assert AuditEvent.objects.count() == events
    definition = ReviewDefinition.objects.get()
    assert definition.recurrence == "quarterly" and definition.reviewer_type == "manager"
    assert sorted(definition.roles.values_list("name", flat=True)) == [
        "Global Administrator",
        "User Administrator",
    ]
    run = ReviewInstance.objects.get()
    assert run.status == ReviewInstance.Status.ACTIVE
    reviewers = {
        item.principal_label: [user.username for user in item.reviewers.all()]
        for item in run.items.prefetch_related("reviewers")
    }
    assert reviewers == {"Ada Admin <ada>": ["bob"], "Alice Requester <alice>": ["bob"]}


def test_demo_refuses_without_debug_and_writes_nothing(settings):
    settings.DEBUG = False
    users, events = User.objects.count(), AuditEvent.objects.count()
    with pytest.raises(CommandError, match="DJANGO_DEBUG=1 or --i-know-this-is-not-production"):
        call_command("demo")
    with pytest.raises(CommandError):
        call_command("demo", "--codes")
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)


def test_demo_runs_without_debug_when_told_it_is_not_production(settings, capsys):
    settings.DEBUG = False
    call_command("demo", "--i-know-this-is-not-production")
    assert User.objects.filter(username="alice").exists()


def test_demo_never_touches_an_account_it_did_not_create(development):
    """A real break-glass account named like the demo's gets no demo device, password, role
    or group: the demo refuses and changes nothing at all."""
    glass = UserFactory(username="breakglass", display_name="Real break-glass")
    password = glass.password
    users, events = User.objects.count(), AuditEvent.objects.count()
    with pytest.raises(CommandError, match="breakglass"):
        call_command("demo")
    glass.refresh_from_db()
    assert glass.password == password and not glass.is_superuser
    assert not TOTPDevice.objects.filter(user=glass).exists()
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)
    assert (
        not EligibleAssignment.objects.exists()
        or not EligibleAssignment.objects.filter(user__username__in=["ada", "alice"]).exists()
    )


def test_the_demo_runs_the_first_alert_evaluation(development, capsys):
    from alerts.models import RuleEvaluation
    from alerts.rules import KINDS

    assert not RuleEvaluation.objects.exists()
    call_command("demo")
    assert RuleEvaluation.objects.count() == len(KINDS)
