"""GET /api/v1/check/?user=…&group=…&access=…: PIM for Groups. Does the person hold the
governed group's membership (or ownership) now? Answered, like a role question, from the
active assignments of the group role, in one statement."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import DirectoryGroup
from roles.selectors import GroupAccessRef, role_holding
from roles.services import group_govern
from tests.factories import ActiveAssignmentFactory, DirectoryGroupFactory, UserFactory

from .helpers import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/check/"
PAYROLL = "93000000-0000-4000-8000-000000000003"


@pytest.fixture
def as_checker(checker, token_client):
    return token_client(checker)


@pytest.fixture
def group():
    return DirectoryGroup.objects.create(name="Payroll Admins", external_id=PAYROLL)


@pytest.fixture
def roles(group):
    member, owner = group_govern(actor=None, group=group)
    return {"member": member, "owner": owner}


def inactive(group, access="member"):
    return {
        "active": False,
        "until": None,
        "assignment": None,
        "group": group,
        "access": access,
        "basis": "pim_assignment",
    }


def test_an_active_membership_is_answered_by_object_id_and_by_portal_id(requester, group, roles, as_checker):
    assignment = ActiveAssignmentFactory(
        user=requester, role=roles["member"], ends_at=timezone.now() + timedelta(hours=1)
    )
    until = assignment.ends_at.isoformat().replace("+00:00", "Z")

    by_object_id = as_checker.get(URL, {"user": "requester", "group": PAYROLL, "access": "member"})
    by_portal_id = as_checker.get(URL, {"user": "requester", "group": str(group.pk)})  # member by default

    assert by_object_id.status_code == 200
    assert by_object_id.json() == {
        "active": True,
        "until": until,
        "assignment": str(assignment.pk),
        "group": PAYROLL,
        "access": "member",
        "basis": "pim_assignment",
    }
    assert by_portal_id.json() == {**by_object_id.json(), "group": str(group.pk)}
    # Membership is not ownership.
    owner = as_checker.get(URL, {"user": "requester", "group": PAYROLL, "access": "owner"}).json()
    assert owner == inactive(PAYROLL, "owner")


def test_the_answer_ends_at_the_exact_end_and_counts_group_holders(
    requester, outsider, roles, as_checker, time_machine
):
    ends_at = timezone.now() + timedelta(hours=1)
    team = DirectoryGroupFactory()
    team.members.add(requester)
    ActiveAssignmentFactory(user=None, group=team, role=roles["owner"], ends_at=ends_at)
    query = {"user": "requester", "group": PAYROLL, "access": "owner"}

    assert as_checker.get(URL, query).json()["active"] is True
    assert as_checker.get(URL, {**query, "user": "outsider"}).json()["active"] is False
    time_machine.move_to(ends_at, tick=False)
    assert as_checker.get(URL, query).json() == inactive(PAYROLL, "owner")


def test_synced_membership_of_the_group_is_not_a_pim_assignment(requester, group, roles, as_checker):
    group.members.add(requester)  # a permanent member in Entra, outside PIM

    answer = as_checker.get(URL, {"user": "requester", "group": PAYROLL}).json()

    assert answer == inactive(PAYROLL)


def test_unknown_and_ungoverned_groups_are_simply_not_active(requester, roles, as_checker):
    plain = DirectoryGroupFactory(external_id="94000000-0000-4000-8000-000000000004")
    ActiveAssignmentFactory(user=requester, role=roles["member"])

    for group in ("95000000-0000-4000-8000-000000000005", plain.external_id, str(plain.pk), "999999"):
        assert as_checker.get(URL, {"user": "requester", "group": group}).json() == inactive(group)
    assert as_checker.get(URL, {"user": "nobody", "group": PAYROLL}).json() == inactive(PAYROLL)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"user": "requester", "group": "Payroll Admins"}, "group"),
        ({"user": "requester", "group": "12ab"}, "group"),
        ({"user": "requester", "group": PAYROLL + "0"}, "group"),
        ({"user": "requester", "group": PAYROLL, "access": "admin"}, "access"),
        ({"user": "requester", "group": PAYROLL, "access": " member"}, "access"),
        ({"user": "requester", "group": PAYROLL, "role": "deploy.prod"}, "role"),
        ({"user": "requester"}, "role"),
        ({"user": "requester", "role": "deploy.prod", "access": "member"}, "access"),
        ({"user": "requester", "group": PAYROLL, "scope": "/apps/x"}, "scope"),
        ({"group": PAYROLL}, "user"),
    ],
)
def test_malformed_group_questions_are_a_400_naming_the_field(as_checker, roles, query, field):
    response = as_checker.get(URL, query)

    assert response.status_code == 400
    assert field in error(response)["fields"]


def test_only_role_checkers_may_ask_about_a_group(requester, outsider, roles, token_client):
    ActiveAssignmentFactory(user=requester, role=roles["member"])
    query = {"user": "requester", "group": PAYROLL}

    for person in (requester, outsider):  # holding the group role is no right to ask who does
        response = token_client(person).get(URL, query)
        assert response.status_code == 403
        assert error(response)["message"] == "Asking who holds a role needs the PIM Role Checker role."


def test_a_group_question_is_one_query(requester, roles, as_checker, django_assert_num_queries):
    for _ in range(10):
        ActiveAssignmentFactory(role=roles["member"])
    ActiveAssignmentFactory(user=requester, role=roles["member"])
    query = {"user": "requester", "group": PAYROLL, "access": "member"}
    as_checker.get(URL, query)  # the token's first use is written once a minute at most

    with django_assert_num_queries(1):
        assert as_checker.get(URL, query).json()["active"] is True
    with django_assert_num_queries(1):
        assert role_holding(user="requester", role=GroupAccessRef(PAYROLL, "member")).active


@pytest.mark.parametrize(
    "query",
    [
        {"user": "requester", "group": PAYROLL},
        {"user": " requester ", "group": PAYROLL, "access": "owner"},
        {"user": "requester", "group": "GROUP-PK", "scope": "/"},
        {"user": "outsider", "group": PAYROLL},
        {"user": "requester", "group": "95000000-0000-4000-8000-000000000005"},
    ],
)
def test_the_one_statement_answers_group_questions_as_drfs_path_does(
    requester, group, roles, as_checker, monkeypatch, query
):
    ActiveAssignmentFactory(user=requester, role=roles["member"])
    ActiveAssignmentFactory(user=requester, role=roles["owner"], ends_at=None)
    query = {**query, "group": query["group"].replace("GROUP-PK", str(group.pk))}

    lean = as_checker.get(URL, query)
    monkeypatch.setattr("api.views._lean_check", lambda request: None)
    general = as_checker.get(URL, query)

    assert (lean.status_code, lean.json()) == (general.status_code, general.json())
    assert lean.status_code == 200


def test_the_schema_documents_the_group_question(anonymous):
    import json

    schema = json.loads(anonymous.get("/api/schema/", {"format": "json"}).content)
    parameters = {p["name"] for p in schema["paths"]["/api/v1/check/"]["get"]["parameters"]}

    assert {"user", "role", "group", "access", "scope"} <= parameters
    answer = schema["components"]["schemas"]["CheckAnswer"]
    assert {"group", "access", "basis"} <= set(answer["properties"])
    assert not {"group", "access", "basis"} & set(answer.get("required", []))  # role answers lack them
    assert {"active", "until", "assignment"} <= set(answer["required"])


def test_another_persons_membership_answers_nothing_for_this_person(requester, roles, as_checker):
    other = UserFactory(username="other")
    ActiveAssignmentFactory(user=other, role=roles["member"])

    assert as_checker.get(URL, {"user": "requester", "group": PAYROLL}).json()["active"] is False
    assert as_checker.get(URL, {"user": "other", "group": PAYROLL}).json()["active"] is True
