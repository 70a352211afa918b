"""My roles (/roles/): the requester's home, what they may activate and what they hold now."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.helpers import sign_in_password
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    totp_device,
)

pytestmark = pytest.mark.django_db

MY_ROLES = reverse("activations:my_roles")
XSS = "<script>alert(1)</script>"


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def html(response) -> str:
    return response.content.decode()


def test_my_roles_keeps_its_address():
    assert MY_ROLES == "/roles/"


def test_my_roles_shows_direct_and_group_assignments_with_scope_and_time_left(
    requester, verified_client, role
):
    group = DirectoryGroupFactory(name="Finance Admins")
    group.members.add(requester)
    EligibleAssignmentFactory(user=requester, role=role, ends_at=timezone.now() + timedelta(days=20))
    EligibleAssignmentFactory(user=None, group=group, role=RoleFactory(name="Ledger Reader"))
    ActiveAssignmentFactory(
        user=None,
        group=group,
        role=RoleFactory(name="Invoice Approver"),
        scope="/finance/invoices",
        ends_at=timezone.now() + timedelta(hours=3, minutes=30),
    )
    client = verified_client(requester)
    response = client.get(MY_ROLES)
    assert response.status_code == 200
    page = html(response)  # the Eligible tab first, as in Entra
    assert "Payroll Administrator" in page and "Ledger Reader" in page and "Invoice Approver" not in page
    assert "Group Finance Admins" in page  # the eligibility's "Via"
    assert "(in 2\xa0weeks)" in page
    page = html(client.get(MY_ROLES, {"tab": "active"}))
    assert "Invoice Approver" in page and "Payroll Administrator" not in page
    assert "<code>/finance/invoices</code>" in page
    assert "(in 3\xa0hours)" in page


def test_my_roles_shows_nothing_of_other_people(requester, outsider, verified_client, role):
    EligibleAssignmentFactory(user=outsider, role=role)
    ActiveAssignmentFactory(user=outsider, role=RoleFactory(name="Vault Keeper"))
    page = html(verified_client(requester).get(MY_ROLES))
    assert "Payroll Administrator" not in page and "Vault Keeper" not in page
    assert "You are not eligible for any role." in page


def test_my_roles_escapes_role_names(requester, verified_client):
    EligibleAssignmentFactory(user=requester, role=RoleFactory(name=XSS))
    ActiveAssignmentFactory(user=requester, role=RoleFactory(name=XSS + "!"))
    client = verified_client(requester)
    for tab in ("eligible", "active"):
        page = html(client.get(MY_ROLES, {"tab": tab}))
        assert XSS not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_my_roles_runs_the_same_number_of_queries_for_1_or_30_assignments(requester, verified_client):
    client = verified_client(requester)
    group = DirectoryGroupFactory()
    group.members.add(requester)
    EligibleAssignmentFactory(user=requester)
    client.get(MY_ROLES)  # warm-up: per-process caches (content types, sessions)
    with CaptureQueriesContext(connection) as one:
        assert client.get(MY_ROLES).status_code == 200
    for n in range(29):
        principal = {"user": None, "group": group} if n % 3 else {"user": requester}
        factory = EligibleAssignmentFactory if n % 2 else ActiveAssignmentFactory
        factory(**principal, scope=f"/app/{n}")
    with CaptureQueriesContext(connection) as thirty:
        response = client.get(MY_ROLES)
    roles = response.context["roles"]
    assert len(roles.eligible) + len(roles.active) == 30
    assert len(thirty) == len(one), "\n".join(q["sql"] for q in thirty.captured_queries)


def test_my_roles_needs_a_verified_session(requester, client):
    totp_device(requester)
    sign_in_password(client, requester)
    response = client.get(MY_ROLES)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:verify')}?next=%2Froles%2F"


def test_my_roles_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(MY_ROLES)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
