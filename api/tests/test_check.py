"""GET /api/v1/check/: does a person hold a role at a scope, now? For services that gate on
roles; exact at the second, one query: roles.selectors.role_holding asked by name."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import user_deactivate
from roles.models import ActiveAssignment
from roles.selectors import role_holding
from tests.factories import ActiveAssignmentFactory, DirectoryGroupFactory, RoleFactory, UserFactory

from .helpers import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/check/"


@pytest.fixture
def as_checker(checker, token_client):
    return token_client(checker)


@pytest.fixture
def role():
    return RoleFactory(name="Deploy to production", template_id="deploy.prod")


def test_an_active_assignment_is_active_until_its_end(requester, role, as_checker):
    assignment = ActiveAssignmentFactory(
        user=requester, role=role, ends_at=timezone.now() + timedelta(hours=2)
    )

    answer = as_checker.get(URL, {"user": "requester", "role": str(role.pk), "scope": "/"}).json()

    assert answer == {
        "active": True,
        "until": assignment.ends_at.isoformat().replace("+00:00", "Z"),
        "assignment": str(assignment.pk),
    }


def test_the_answer_flips_at_the_exact_end_with_no_job_run(requester, role, as_checker, time_machine):
    ends_at = timezone.now() + timedelta(hours=1)
    ActiveAssignmentFactory(user=requester, role=role, ends_at=ends_at)
    query = {"user": "requester", "role": "deploy.prod"}

    time_machine.move_to(ends_at - timedelta(seconds=1), tick=False)
    assert as_checker.get(URL, query).json()["active"] is True
    time_machine.move_to(ends_at, tick=False)
    assert as_checker.get(URL, query).json() == {"active": False, "until": None, "assignment": None}
    assert ActiveAssignment.objects.get(role=role).ended_at is None  # nothing closed it


def test_a_permanent_assignment_is_active_with_no_end(requester, role, as_checker):
    ActiveAssignmentFactory(user=requester, role=role, ends_at=None)

    answer = as_checker.get(URL, {"user": "requester", "role": "deploy.prod"}).json()

    assert answer["active"] is True and answer["until"] is None


def test_a_group_assignment_counts_for_its_members_only(requester, outsider, role, as_checker):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    ActiveAssignmentFactory(user=None, group=group, role=role)

    assert as_checker.get(URL, {"user": "requester", "role": "deploy.prod"}).json()["active"] is True
    assert as_checker.get(URL, {"user": "outsider", "role": "deploy.prod"}).json()["active"] is False


def test_an_assignment_applies_below_its_scope_not_above(requester, role, as_checker):
    ActiveAssignmentFactory(user=requester, role=role, scope="/apps/payroll")
    query = {"user": "requester", "role": "deploy.prod"}

    assert as_checker.get(URL, {**query, "scope": "/apps/payroll/eu"}).json()["active"] is True
    assert as_checker.get(URL, {**query, "scope": "/apps/payroll"}).json()["active"] is True
    assert as_checker.get(URL, {**query, "scope": "/apps"}).json()["active"] is False
    assert as_checker.get(URL, query).json()["active"] is False  # scope defaults to /


@pytest.mark.parametrize(
    "scope",
    [
        "/apps/billing/../payroll",
        "/apps/billing/./payroll",
        "/apps/billing/..",
        "/apps/billing/%2e%2e/payroll",
        "/apps/billing/",
        "/apps/billing//payroll",
    ],
)
def test_a_path_not_in_normal_form_is_a_400_never_held(requester, role, as_checker, scope):
    ActiveAssignmentFactory(user=requester, role=role, scope="/apps/billing")

    response = as_checker.get(URL, {"user": "requester", "role": "deploy.prod", "scope": scope})

    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["scope"]


def test_a_deactivated_person_holds_nothing(requester, role, as_checker):
    ActiveAssignmentFactory(user=requester, role=role)
    user_deactivate(actor=None, user=requester, reason="Left")

    assert as_checker.get(URL, {"user": "requester", "role": "deploy.prod"}).json()["active"] is False


def test_unknown_people_and_roles_are_simply_not_active(requester, role, as_checker):
    ActiveAssignmentFactory(user=requester, role=role)
    inactive = {"active": False, "until": None, "assignment": None}

    assert as_checker.get(URL, {"user": "nobody", "role": "deploy.prod"}).json() == inactive
    assert as_checker.get(URL, {"user": "requester", "role": "no.such.role"}).json() == inactive
    assert (
        as_checker.get(URL, {"user": "requester", "role": "00000000-0000-4000-8000-000000000000"}).json()
        == inactive
    )


def test_a_template_id_shared_by_two_roles_must_be_asked_by_role_id(requester, as_checker):
    RoleFactory(kind="app", template_id="shared")
    RoleFactory(kind="azure", template_id="shared")

    response = as_checker.get(URL, {"user": "requester", "role": "shared"})

    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["role"]


@pytest.mark.parametrize(
    "query",
    [
        {"role": "deploy.prod"},
        {"user": "requester"},
        {"user": "requester", "role": ""},
        {"user": "requester", "role": "deploy.prod", "scope": "apps"},
        {"user": "requester", "role": "deploy.prod", "scope": "/apps//x"},
        {"user": "requester", "role": "deploy.prod", "scope": "/apps/x/"},
        {"user": "requester", "role": "deploy.prod", "scope": "/apps/\x00"},
        {"user": "r" * 151, "role": "deploy.prod"},
        {"user": "requester", "role": "x" * 65},
    ],
)
def test_malformed_questions_are_a_400_naming_the_field(as_checker, query):
    response = as_checker.get(URL, query)

    assert response.status_code == 400
    assert error(response)["fields"]


def test_only_role_checkers_and_pim_administrators_may_ask(requester, outsider, auditor, admin, token_client):
    query = {"user": "requester", "role": "pim.administrator"}

    for person in (requester, outsider, auditor):
        response = token_client(person).get(URL, query)
        assert response.status_code == 403
        assert error(response)["message"] == "Asking who holds a role needs the PIM Role Checker role."
    assert token_client(admin).get(URL, query).status_code == 200


def test_a_checker_whose_role_ended_may_no_longer_ask(checker, as_checker, time_machine):
    assignment = ActiveAssignment.objects.get(user=checker)
    ActiveAssignment.objects.filter(pk=assignment.pk).update(ended_at=timezone.now() + timedelta(minutes=1))

    assert as_checker.get(URL, {"user": "x", "role": "y"}).status_code == 200
    time_machine.move_to(timezone.now() + timedelta(minutes=1), tick=False)
    assert as_checker.get(URL, {"user": "x", "role": "y"}).status_code == 403


def test_the_check_is_one_query(requester, role, django_assert_num_queries):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    for scope in ("/", "/apps/a", "/apps/b"):
        ActiveAssignmentFactory(user=requester, role=role, scope=scope)
        ActiveAssignmentFactory(user=None, group=group, role=role, scope=scope)

    with django_assert_num_queries(1):
        assert role_holding(user="requester", role="deploy.prod", scope="/apps/a/x").active


def test_the_endpoint_is_one_query_whatever_the_data(requester, role, as_checker, django_assert_num_queries):
    for _ in range(20):
        ActiveAssignmentFactory(role=role)
    ActiveAssignmentFactory(user=requester, role=role)
    query = {"user": "requester", "role": str(role.pk)}
    as_checker.get(URL, query)  # the token's first use is written once a minute at most

    # the token, the checker's own permission (its roles, now) and the answer, together
    with django_assert_num_queries(1):
        assert as_checker.get(URL, query).json()["active"] is True
    with django_assert_num_queries(1):
        assert as_checker.get(URL, {"user": "requester", "role": "deploy.prod"}).json()["active"] is True


def test_the_first_use_in_a_minute_also_records_the_tokens_use(
    checker, requester, role, as_checker, django_assert_num_queries, time_machine
):
    token = checker.api_tokens.get()
    ActiveAssignmentFactory(user=requester, role=role)
    as_checker.get(URL, {"user": "requester", "role": "deploy.prod"})
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    time_machine.move_to(timezone.now() + timedelta(seconds=61), tick=False)
    with django_assert_num_queries(2):  # the check, then the conditional update of last_used_at
        as_checker.get(URL, {"user": "requester", "role": "deploy.prod"})
    token.refresh_from_db()
    assert token.last_used_at > first


def test_a_checker_in_a_group_holding_the_checker_role_may_ask(token_client, requester, role):
    from api.services import PIM_ROLE_CHECKER
    from roles.selectors import portal_role

    service = UserFactory(username="svc")
    group = DirectoryGroupFactory()
    group.members.add(service)
    ActiveAssignmentFactory(user=None, group=group, role=portal_role(PIM_ROLE_CHECKER), ends_at=None)
    ActiveAssignmentFactory(user=requester, role=role)

    assert token_client(service).get(URL, {"user": "requester", "role": "deploy.prod"}).json()["active"]


@pytest.mark.parametrize(
    "query",
    [
        {"user": " requester ", "role": "deploy.prod"},
        {"user": "requester", "role": "deploy.prod", "scope": "/apps/x"},
        {"user": "outsider", "role": "deploy.prod"},
        {"user": "requester", "role": "nothing"},
        {"user": "requester", "role": "00000000-0000-4000-8000-000000000000"},
    ],
)
def test_the_one_statement_answers_as_drfs_path_does(requester, role, as_checker, monkeypatch, query):
    """The same questions with the one-statement path and with DRF's general path (the
    authentication, permission class, serializer and role_holding) get the same answers."""
    assignment = ActiveAssignmentFactory(
        user=requester, role=role, ends_at=timezone.now() + timedelta(hours=2)
    )
    ActiveAssignmentFactory(user=requester, role=role, scope="/apps/x", ends_at=None)

    lean = as_checker.get(URL, query)
    monkeypatch.setattr("api.views._lean_check", lambda request: None)
    general = as_checker.get(URL, query)

    assert (lean.status_code, lean.json()) == (general.status_code, general.json())
    if query.get("scope") == "/apps/x":
        assert lean.json()["until"] is None and lean.json()["active"] is True
    elif query["user"].strip() == "requester" and query["role"] == "deploy.prod":
        assert lean.json()["assignment"] == str(assignment.pk)


def test_refusals_keep_their_answers_on_the_lean_path(requester, outsider, token_client):
    """A token refused or a caller without the permission falls through to DRF's path, with
    its 401 and 403 answers (the one statement answers only what may be answered)."""
    revoked = token_client(outsider)
    from api.services import api_token_revoke

    api_token_revoke(actor=None, token=outsider.api_tokens.get())
    query = {"user": "requester", "role": "deploy.prod"}

    assert revoked.get(URL, query).status_code == 401
    assert token_client(requester).get(URL, query).status_code == 403


def test_asking_by_name_agrees_with_asking_with_the_objects_everywhere(requester, role, time_machine):
    """The one rule, asked both ways over a mix of assignments, scopes and moments."""
    now = timezone.now().replace(microsecond=0)
    time_machine.move_to(now, tick=False)
    other = RoleFactory(template_id="other.role")
    group = DirectoryGroupFactory()
    group.members.add(requester)
    hour = timedelta(hours=1)
    ActiveAssignmentFactory(user=requester, role=role, scope="/", starts_at=now - hour, ends_at=now + hour)
    ActiveAssignmentFactory(
        user=requester, role=role, scope="/", starts_at=now + hour, ends_at=now + 3 * hour
    )
    ActiveAssignmentFactory(
        user=None, group=group, role=role, scope="/apps/a", starts_at=now - hour, ends_at=now + 2 * hour
    )
    ActiveAssignmentFactory(
        user=requester,
        role=role,
        scope="/apps/b",
        starts_at=now - hour,
        ends_at=None,
        ended_at=now + hour / 2,
    )
    ActiveAssignmentFactory(user=requester, role=other, scope="/apps/a", starts_at=now - hour, ends_at=None)
    ActiveAssignmentFactory(user=UserFactory(), role=role, scope="/", starts_at=now - hour, ends_at=None)
    moments = [now + delta for delta in (-2 * hour, timedelta(0), hour / 2, hour, 2 * hour, 3 * hour)]
    scopes = ["/", "/apps/a", "/apps/a/x", "/apps/b", "/apps/c"]

    for at, scope, asked in itertools.product(moments, scopes, (role, other)):
        holding = role_holding(user=requester, role=asked, scope=scope, at=at)
        by_name = role_holding(user="requester", role=asked.template_id, scope=scope, at=at)
        assert by_name == holding, (at, scope, asked)
