"""Fixtures shared by all tests: personas, a TOTP-verified client, database helpers."""

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from activations.services import activation_approve, activation_deactivate, activation_request
from roles.directory_services import directory_outbox_drain
from tests.factories import (
    ActiveAssignmentFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    portal_role,
    totp_code,
    totp_device,
)

# Data migrations that fill the catalog and the portal roles' grants, in order: a flushed
# test database (transaction=True) gets them back from here.
CATALOG_DATA_MIGRATIONS = [
    ("roles.migrations.0002_builtin_catalog", "load_catalog"),
    ("reviews.migrations.0002_portal_role_grants", "grant"),
    ("entra.migrations.0002_portal_role_grants", "grant"),
    ("api.migrations.0002_role_checker", "add_checker"),
    ("audit.migrations.0004_portal_role_grants", "grant"),
    ("alerts.migrations.0002_permissions_from_audit", "move_grants"),
    ("roles.migrations.0008_i11a_admin_invites_people", "add_grant"),
    ("integrations.migrations.0001_i13_integrations", "grant"),
]

# Where the `clock` fixture stops time unless the test module names its own CLOCK_START.
CLOCK_START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

PIM_ADMIN = "pim.administrator"
PIM_AUDITOR = "pim.auditor"


def _activate_portal_role(user, template_id):
    """Give the user the portal role for the next few hours (as if they had activated it)."""
    return ActiveAssignmentFactory(
        user=user,
        role=portal_role(template_id),
        origin="activation",
        starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(hours=4),
    )


# The append-only tables' TRUNCATE triggers (audit migrations 0001, 0002).
AUDIT_TRUNCATE_TRIGGERS = {
    "audit_auditevent": "audit_event_no_truncate",
    "audit_auditcheckpoint": "audit_checkpoint_no_truncate",
}


@pytest.fixture(scope="session", autouse=True)
def audit_flush_past_the_trigger():
    """Test-database flushes (transaction=True tests) TRUNCATE every table, which the audit
    log's triggers refuse to anyone. Only here, in the tests, does the flush disable those
    triggers around its TRUNCATE and enable them again, in the flush's own transaction: that
    takes the tables' owner (the test database's superuser). Production code has no such
    path, and the portal's own role owns nothing (README "Database roles")."""
    try:
        from django.db.backends.postgresql.operations import DatabaseOperations
    except ImportError:  # no PostgreSQL driver: SQLite runs only, nothing to get past
        yield
        return
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, **kwargs):
        statements = original(self, style, tables, **kwargs)
        guarded = [(table, trigger) for table, trigger in AUDIT_TRUNCATE_TRIGGERS.items() if table in tables]
        if not statements or not guarded:
            return statements
        off = [f"ALTER TABLE {table} DISABLE TRIGGER {trigger};" for table, trigger in guarded]
        on = [f"ALTER TABLE {table} ENABLE TRIGGER {trigger};" for table, trigger in guarded]
        return [*off, *statements, *on]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(autouse=True)
def role_catalog(request):
    """The built-in catalog comes from a data migration; tests on a flushed database
    (transaction=True) get it back here."""
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    if not marker and not names & {"db", "transactional_db"}:
        return
    transactional = "transactional_db" in names or (marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.apps import apps

    from roles.models import Role

    if not Role.objects.filter(builtin=True).exists():
        for module, function in CATALOG_DATA_MIGRATIONS:
            getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture(autouse=True)
def refusal_counter():
    """Every test starts with nobody's refusals counted (audit.refusals rate-limits per minute,
    and most tests stop the clock at the same minute) and none kept aside by an earlier test
    (one refused inside a transaction that the test's own never lets commit)."""
    from django.core.cache import caches

    from audit import refusals

    caches["refusals"].clear()
    refusals.audit_refusals_discard()


@pytest.fixture
def clock(request, time_machine):
    """Time stopped at the test module's CLOCK_START (else the default above); the test moves
    it on with clock.move_to(...) or clock.shift(...). A module that wants it for every test
    says pytestmark = pytest.mark.usefixtures("clock"), so it is stopped before any persona is
    made (their portal roles start "now")."""
    time_machine.move_to(getattr(request.module, "CLOCK_START", CLOCK_START), tick=False)
    return time_machine


@pytest.fixture
def requester(db):
    return UserFactory(username="requester", display_name="Rita Requester")


@pytest.fixture
def approver(db):
    return UserFactory(username="approver", display_name="Arne Approver")


@pytest.fixture
def reviewer(db):
    return UserFactory(username="reviewer", display_name="Rene Reviewer")


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider", display_name="Otto Outsider")


@pytest.fixture
def admin(db):
    """A PIM Administrator with the portal role currently active."""
    user = UserFactory(username="pimadmin", display_name="Ada Admin")
    _activate_portal_role(user, PIM_ADMIN)
    return user


@pytest.fixture
def second_admin(db):
    """Another PIM Administrator with the portal role active (the two-person rule's approver)."""
    user = UserFactory(username="pimadmin2", display_name="Bea Second-Admin")
    _activate_portal_role(user, PIM_ADMIN)
    return user


@pytest.fixture
def auditor(db):
    """A PIM Auditor with the portal role currently active."""
    user = UserFactory(username="auditor", display_name="Aud Itor")
    _activate_portal_role(user, PIM_AUDITOR)
    return user


@pytest.fixture
def verified_client(client):
    """Sign a user in through the real forms: password, then a fresh TOTP code.

    Returns a function: verified_client(user) -> the signed-in, step-up-verified client.
    """

    def sign_in(user):
        from tests.factories import PASSWORD

        device = totp_device(user)
        response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
        assert response.status_code == 302, response.content
        response = client.post("/accounts/verify/", {"otp_token": totp_code(device)})
        assert response.status_code == 302, response.content
        client.device = device
        return client

    return sign_in


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def activation_story(requester, approver):
    """An activation of a role that needs approval, from request to deactivation, with the
    directory confirming the grant and the revoke: returns the request."""
    role = RoleFactory(name="Story Administrator", role_settings__require_approval=True)
    role.settings.approvers.add(approver)
    eligible = EligibleAssignmentFactory(user=requester, role=role)
    now = timezone.now()
    request = activation_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(hours=1),
        justification="Fix <b>prod</b> incident",
        ticket_number="INC-42",
        ticket_system="ServiceNow",
        mfa_verified_at=now,
    )
    request = activation_approve(approver=approver, request=request, reason="Go ahead", mfa_verified_at=now)
    directory_outbox_drain()
    request = activation_deactivate(requester=requester, request=request)
    directory_outbox_drain()
    return request
