"""Portal pages of the roles app: My roles and the role detail page."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.helpers import sign_in_password
from roles import services
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    totp_device,
)

pytestmark = pytest.mark.django_db

MY_ROLES = reverse("roles:my_roles")
XSS = "<script>alert(1)</script>"


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def html(response) -> str:
    return response.content.decode()


# --- My roles ------------------------------------------------------------------------------


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
    response = verified_client(requester).get(MY_ROLES)
    assert response.status_code == 200
    page = html(response)
    assert "Payroll Administrator" in page and "Ledger Reader" in page and "Invoice Approver" in page
    assert "Group Finance Admins" in page  # the eligibility's "Via"
    assert "<code>/finance/invoices</code>" in page
    assert "3\xa0hours, 29\xa0minutes" in page or "3\xa0hours, 30\xa0minutes" in page
    assert "2\xa0weeks, 5\xa0days" in page or "2\xa0weeks, 6\xa0days" in page


def test_my_roles_shows_nothing_of_other_people(requester, outsider, verified_client, role):
    EligibleAssignmentFactory(user=outsider, role=role)
    ActiveAssignmentFactory(user=outsider, role=RoleFactory(name="Vault Keeper"))
    page = html(verified_client(requester).get(MY_ROLES))
    assert "Payroll Administrator" not in page and "Vault Keeper" not in page
    assert "You are not eligible for any role." in page


def test_my_roles_escapes_role_names(requester, verified_client):
    EligibleAssignmentFactory(user=requester, role=RoleFactory(name=XSS))
    ActiveAssignmentFactory(user=requester, role=RoleFactory(name=XSS + "!"))
    page = html(verified_client(requester).get(MY_ROLES))
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
    assert len(response.context["eligibilities"]) + len(response.context["active_assignments"]) == 30
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


# --- Role detail ---------------------------------------------------------------------------


@pytest.fixture
def assigned_role(role, requester, approver):
    EligibleAssignmentFactory(user=requester, role=role, justification="Month-end close")
    ActiveAssignmentFactory(user=approver, role=role, justification="Audit week")
    return role


def test_role_detail_is_404_for_an_outsider(outsider, verified_client, assigned_role):
    response = verified_client(outsider).get(assigned_role.get_absolute_url())
    assert response.status_code == 404


def test_role_detail_is_404_for_a_requester_eligible_for_the_role(requester, verified_client, assigned_role):
    response = verified_client(requester).get(assigned_role.get_absolute_url())
    assert response.status_code == 404


def test_role_detail_shows_assignments_to_the_pim_administrator(admin, verified_client, assigned_role):
    response = verified_client(admin).get(assigned_role.get_absolute_url())
    assert response.status_code == 200
    page = html(response)
    assert "Rita Requester" in page and "Month-end close" in page
    assert "Arne Approver" in page and "Audit week" in page


def test_role_detail_shows_assignments_to_the_roles_owner(reviewer, admin, verified_client, assigned_role):
    services.role_owner_add(actor=admin, role=assigned_role, user=reviewer)
    response = verified_client(reviewer).get(assigned_role.get_absolute_url())
    assert response.status_code == 200
    assert "Month-end close" in html(response)


def test_role_detail_is_404_for_an_owner_of_another_role(reviewer, admin, verified_client, assigned_role):
    services.role_owner_add(actor=admin, role=RoleFactory(name="Other"), user=reviewer)
    response = verified_client(reviewer).get(assigned_role.get_absolute_url())
    assert response.status_code == 404


def test_role_detail_of_a_random_id_is_404(admin, verified_client):
    response = verified_client(admin).get(reverse("roles:role_detail", args=[uuid.uuid4()]))
    assert response.status_code == 404


def test_role_detail_escapes_names_and_justifications(admin, requester, verified_client):
    role = RoleFactory(name=XSS, description=XSS)
    EligibleAssignmentFactory(user=requester, role=role, justification='<img src=x onerror="alert(2)">')
    page = html(verified_client(admin).get(role.get_absolute_url()))
    assert XSS not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
