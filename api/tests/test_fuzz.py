"""A bounded schemathesis run against the OpenAPI schema, in process (WSGI), as a PIM
Administrator with a token: no operation answers with a 5xx, and every answer matches the
schema (status, content type, body). Bounded: a fixed number of examples per operation, no
deadline per example; the whole run takes well under a minute."""

from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from activations.services import activation_request
from api.services import api_token_create
from pim_portal.wsgi import application
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, totp_device

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def fuzz_data(db, admin, requester):
    """Some data for the operations to find, and a WSGI handler fit for the test's transaction."""
    # The WSGI handler closes "old" connections when a request starts; inside the test's
    # transaction that would poison it (Django's test client does the same disconnect).
    request_started.disconnect(close_old_connections)
    totp_device(admin)
    for person in (admin, requester):
        eligible = EligibleAssignmentFactory(
            user=person, role=RoleFactory(), ends_at=timezone.now() + timedelta(days=7)
        )
        activation_request(
            requester=person,
            eligible=eligible,
            duration=timedelta(hours=1),
            justification="Fuzzing",
            mfa_verified_at=timezone.now(),
        )
    UserFactory(username="someone-else")
    yield api_token_create(actor=None, user=admin, name="fuzz")[1]
    request_started.connect(close_old_connections)


# Loaded when the tests are collected (schemathesis' lazy fixture loader does not work with
# this pytest): the schema endpoint needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_operation_answers_with_a_server_error_or_off_schema(case, fuzz_data):
    # A page cursor is an opaque token only the API makes: a made-up one is a 400 by design,
    # which a schema cannot express, so "schema-valid data is accepted" does not apply to it.
    # Nor can it say which code or passkey answer is right, or that the person has a passkey:
    # the step-up refuses a wrong one with a 400, whatever its shape.
    # The check's parameters go in pairs a schema of query parameters cannot state: role or
    # group (not both, not neither), access only with group, a group's scope is /. Those
    # combinations are refused with a 400 naming the field, by design.
    query = case.query or {}
    check_pairing = case.path == "/api/v1/check/" and (
        ("role" in query) == ("group" in query)
        or ("access" in query and "group" not in query)
        or ("group" in query and query.get("scope", "/") != "/")
    )
    step_up = case.path.startswith("/api/v1/step-up/")
    excluded = [positive_data_acceptance] if "cursor" in query or step_up or check_pairing else []
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_data}"}, excluded_checks=excluded)
