"""Portal pages of the roles app: the role detail page (My roles is in activations)."""

import uuid

import pytest
from django.urls import reverse

from roles import services
from tests.factories import (
    ActiveAssignmentFactory,
    EligibleAssignmentFactory,
    RoleFactory,
)

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def html(response) -> str:
    return response.content.decode()


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


def test_role_detail_links_the_administration_page_for_pim_administrators(
    admin, verified_client, assigned_role
):
    manage = reverse("manage_roles:role", args=[assigned_role.pk])
    assert f'href="{manage}"' in html(verified_client(admin).get(assigned_role.get_absolute_url()))


def test_role_detail_does_not_link_the_administration_page_for_owners(
    admin, reviewer, verified_client, assigned_role
):
    services.role_owner_add(actor=admin, role=assigned_role, user=reviewer)
    page = html(verified_client(reviewer).get(assigned_role.get_absolute_url()))
    assert "Month-end close" in page
    assert reverse("manage_roles:role", args=[assigned_role.pk]) not in page
