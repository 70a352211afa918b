"""The role catalog and the caller's own eligible and active assignments."""

from datetime import timedelta

import pytest
from django.utils import timezone

from roles.models import Role
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
)

from .helpers import error, granted_activation

pytestmark = pytest.mark.django_db


def test_any_signed_in_person_reads_the_catalog_with_each_roles_settings(outsider, token_client):
    client = token_client(outsider)

    page = client.get("/api/v1/roles/", {"page_size": 500}).json()

    global_admin = next(role for role in page["results"] if role["name"] == "Global Administrator")
    assert global_admin["template_id"] == "62e90394-69f5-4237-9190-012177145e10"
    assert global_admin["kind"] == "entra"
    assert global_admin["settings"]["activation_max_duration"] == 8 * 3600
    assert global_admin["settings"]["require_mfa"] is True
    names = [role["name"] for role in page["results"]]
    assert names == sorted(names)
    assert len(names) == Role.objects.count()


def test_the_catalog_pages_by_cursor_in_a_fixed_number_of_queries(
    outsider, token_client, django_assert_num_queries
):
    client = token_client(outsider)
    client.get("/api/v1/roles/")  # the token's first use is recorded once

    with django_assert_num_queries(2):  # the token, the page of roles with their settings (no COUNT)
        first = client.get("/api/v1/roles/", {"page_size": 5}).json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == len(second["results"]) == 5
    assert first["results"][-1]["name"] < second["results"][0]["name"]


def test_one_role_by_id_or_404(outsider, token_client):
    role = RoleFactory(name="Payroll Reader", description="<b>reads</b>")
    client = token_client(outsider)

    assert client.get(f"/api/v1/roles/{role.pk}/").json()["description"] == "<b>reads</b>"
    assert error(client.get("/api/v1/roles/00000000-0000-4000-8000-000000000000/"))["code"] == "not_found"


def test_my_eligibilities_are_mine_direct_and_through_groups_and_current_only(
    requester, outsider, token_client, django_assert_max_num_queries
):
    group = DirectoryGroupFactory(name="Finance")
    group.members.add(requester)
    direct = EligibleAssignmentFactory(user=requester, role=RoleFactory(name="A role"))
    via_group = EligibleAssignmentFactory(user=None, group=group, role=RoleFactory(name="B role"))
    EligibleAssignmentFactory(
        user=requester,
        starts_at=timezone.now() - timedelta(days=9),
        ends_at=timezone.now() - timedelta(days=1),
    )  # ended
    EligibleAssignmentFactory(user=outsider)
    client = token_client(requester)
    client.get("/api/v1/me/eligibilities/")

    with django_assert_max_num_queries(3):
        items = client.get("/api/v1/me/eligibilities/").json()

    assert [(item["id"], item["via"]) for item in items] == [
        (str(direct.pk), "direct"),
        (str(via_group.pk), "Finance"),
    ]
    assert items[0]["role"]["name"] == "A role"


def test_my_active_assignments_link_to_the_activation_behind_them(requester, eligibility, token_client):
    granted = granted_activation(requester, eligibility)
    direct = ActiveAssignmentFactory(user=requester, role=RoleFactory(name="Z direct"))

    items = token_client(requester).get("/api/v1/me/active-assignments/").json()

    assert [(item["id"], item["activation_request"]) for item in items] == [
        (str(granted.active_assignment_id), str(granted.pk)),
        (str(direct.pk), None),
    ]
    assert items[0]["ends_at"] is not None
