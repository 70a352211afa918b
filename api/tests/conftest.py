"""Fixtures of the API tests: token clients, the checker role, a role that needs approval."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.cache import caches
from django.utils import timezone
from rest_framework.test import APIClient

from api.services import api_token_create, role_checker_grant, service_account_ensure
from roles.models import RoleSettings
from tests.factories import EligibleAssignmentFactory, RoleFactory, totp_device

_checker_migration = importlib.import_module("api.migrations.0002_role_checker")
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


@pytest.fixture(autouse=True)
def api_state(request, settings):
    """Throttle counts live in this process's memory (never a shared Redis, where parallel
    workers would count each other's users) and start from zero; the checker role is there
    even after a flush (transactional tests) removed what the data migration made."""
    settings.CACHES = {
        **settings.CACHES,
        "api_throttle": {"BACKEND": LOCMEM, "LOCATION": request.node.nodeid},
    }
    caches["api_throttle"].clear()
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
        request.fixturenames
    )
    if uses_db:
        request.getfixturevalue("role_catalog")  # the database is set up (and the catalog is back)
        _checker_migration.add_checker(apps, None)


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def token_client():
    """token_client(user) -> an APIClient sending a fresh token of the user."""

    def make(user, **token_options):
        _, secret = api_token_create(actor=None, user=user, name="test", **token_options)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        client.secret = secret
        return client

    return make


@pytest.fixture
def checker(db):
    """A service account holding PIM Role Checker permanently."""
    user, _ = service_account_ensure(username="svc-gate")
    role_checker_grant(user=user)
    return user


@pytest.fixture
def role(db):
    """A role that needs one approval, from the approver fixture; 4 hours at most."""
    return RoleFactory(name="Payroll Administrator", template_id="payroll.admin")


@pytest.fixture
def approval_role(role, approver):
    settings = RoleSettings.objects.get(role=role)
    settings.require_approval = True
    settings.activation_max_duration = timedelta(hours=4)
    settings.save()
    settings.approvers.set([approver])
    return role


@pytest.fixture
def eligibility(requester, role):
    return EligibleAssignmentFactory(user=requester, role=role, ends_at=timezone.now() + timedelta(days=90))


@pytest.fixture
def devices(requester, approver):
    """TOTP devices of the requester and the approver: {user: device}."""
    return {requester: totp_device(requester), approver: totp_device(approver)}
