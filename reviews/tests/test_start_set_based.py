"""The set-based review start (reviews.services.snapshot) writes exactly what the previous,
row-by-row start wrote (kept in legacy_snapshot as the reference): the same items with the
same last use and recommendation, the same reviewers, the same audit event and emails; in a
number of statements that does not grow with the items; its emails reach the broker as one
message."""

import math
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from notifications.models import Email
from reviews import services
from reviews.models import ReviewerAssignment, ReviewInstance, ReviewItem
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
)

from .helpers import definition_create
from .legacy_snapshot import snapshot_items

pytestmark = pytest.mark.django_db

ITEM_FIELDS = [
    "user_id",
    "group_id",
    "principal_label",
    "role_id",
    "scope",
    "last_activation_at",
    "last_sign_in_at",
    "last_sign_in_source",
    "recommendation",
    "recommendation_reason",
    "decision",
    "from_recommendation",
    "justification",
    "decided_by_id",
    "decided_at",
    "applied_at",
    "outcome",
    "outcome_detail",
]


def item_key(item: ReviewItem) -> tuple:
    return (item.assignment_type, item.eligible_id or item.active_id)


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=123456)


@pytest.fixture
def world(now, admin):
    """Users with and without managers, display names and sign-ins from each source (and
    ties), a deactivated holder, groups with and without members, owners and named reviewers
    (some of them holders, some deactivated), eligible and active assignments current, expired,
    ended, future and out of scope, and an activation history in, at the edge of and beyond
    the window."""
    day = timedelta(days=1)
    roles = {name: RoleFactory(name=f"{name} Administrator") for name in ("Payroll", "Ledger", "Other")}
    payroll, ledger, other = roles["Payroll"], roles["Ledger"], roles["Other"]
    boss = UserFactory(username="boss", display_name="Bo Boss")
    gone_boss = UserFactory(username="goneboss", is_active=False)
    users = {
        "alice": UserFactory(
            username="alice", display_name="Alice A", manager=boss, last_sign_in_at=now - 3 * day
        ),
        "bob": UserFactory(
            username="bob", display_name="", manager=gone_boss, directory_sign_in_at=now - 40 * day
        ),
        "carol": UserFactory(
            username="carol",
            last_sign_in_at=now - 5 * day,
            directory_sign_in_at=now - 5 * day,
            directory_non_interactive_sign_in_at=now - 5 * day,
        ),
        "dave": UserFactory(
            username="dave",
            last_sign_in_at=now - 10 * day,
            directory_sign_in_at=now - 2 * day,
            directory_non_interactive_sign_in_at=now - 2 * day,
        ),
        "erin": UserFactory(
            username="erin", manager=boss, is_active=False, directory_non_interactive_sign_in_at=now - day
        ),
        "frank": UserFactory(username="frank", manager=boss),
        "gina": UserFactory(
            username="gina", manager=boss, directory_non_interactive_sign_in_at=now - 90 * day
        ),
    }
    carol = users["carol"]
    carol.manager = carol  # her own manager: she may not review herself
    carol.save()
    owner = UserFactory(username="owner")
    gone_owner = UserFactory(username="goneowner", is_active=False)
    named = UserFactory(username="named")
    gone_named = UserFactory(username="gonenamed", is_active=False)
    fallback = UserFactory(username="fallback")
    payroll.owners.add(owner, gone_owner, users["alice"])
    ledger.owners.add(gone_owner)
    team = DirectoryGroupFactory(name="Payroll team")
    team.members.add(named, owner, users["frank"])
    empty = DirectoryGroupFactory(name="Empty group")

    def eligible(user, role, **extra):
        extra.setdefault("starts_at", now - 100 * day)
        extra.setdefault("ends_at", now + 100 * day)
        return EligibleAssignmentFactory(user=user, group=None, role=role, **extra)

    for name in ("alice", "bob", "erin", "frank", "gina"):
        eligible(users[name], payroll)
    eligible(carol, payroll, scope="/subscriptions/1")
    eligible(users["dave"], ledger, ends_at=None)
    EligibleAssignmentFactory(user=None, group=team, role=payroll, starts_at=now - day)
    EligibleAssignmentFactory(user=None, group=empty, role=ledger, starts_at=now - day)
    eligible(users["alice"], ledger, starts_at=now - 10 * day, ends_at=now - day)  # expired
    eligible(users["bob"], ledger, ended_at=now - timedelta(hours=1))  # removed
    eligible(users["dave"], payroll, starts_at=now + day)  # not yet
    eligible(users["frank"], ledger, ended_at=now + day)  # ends tomorrow: current
    eligible(users["alice"], other)  # not reviewed

    def active(user, role, origin="direct", group=None, **extra):
        extra.setdefault("starts_at", now - 10 * day)
        extra.setdefault("ends_at", now + 10 * day)
        return ActiveAssignmentFactory(user=user, group=group, role=role, origin=origin, **extra)

    active(users["alice"], payroll)
    active(users["bob"], ledger, ends_at=None)
    active(None, payroll, group=team)
    active(users["erin"], payroll)
    active(users["gina"], ledger)
    active(users["dave"], payroll)
    active(carol, payroll, ended_at=now - day)  # ended
    active(users["frank"], payroll, origin="activation", starts_at=now - timedelta(minutes=5))
    # the activation history behind the eligible items' recommendations
    for name, role, days_ago in [
        ("alice", payroll, 10),
        ("alice", payroll, 50),
        ("bob", payroll, 45),
        ("carol", payroll, 200),  # before four windows: not looked at
        ("erin", payroll, 30),  # exactly one window ago: still within it
        ("gina", payroll, 30.0001),  # just outside it
        ("dave", ledger, -1),  # starts tomorrow: not yet
        ("frank", ledger, 100),
    ]:
        starts = now - timedelta(days=days_ago)
        active(users[name], role, origin="activation", starts_at=starts, ends_at=starts + timedelta(hours=1))
    return {
        "roles": [payroll, ledger],
        "named": [named, gone_named, users["alice"]],
        "fallback": fallback,
        "gone_fallback": gone_named,
        "admin": admin,
    }


DEFINITIONS = {
    "manager, both kinds": {"reviewer_type": "manager", "review_active": True, "fallback": "fallback"},
    "self": {"reviewer_type": "self", "review_active": True},
    "owners, eligible only": {"reviewer_type": "owners", "fallback": "fallback"},
    "named, deactivated fallback": {"reviewer_type": "named", "review_active": True, "fallback": "gone"},
    "manager, active only, 7 days": {
        "reviewer_type": "manager",
        "review_eligible": False,
        "review_active": True,
        "inactivity_days": 7,
    },
    "owners, no recommendations": {
        "reviewer_type": "owners",
        "review_active": True,
        "recommendations": False,
    },
}


def definition_for(world, name: str):
    settings = dict(DEFINITIONS[name])
    fallback = {"fallback": world["fallback"], "gone": world["gone_fallback"], None: None}[
        settings.pop("fallback", None)
    ]
    if settings["reviewer_type"] == "named":
        settings["named_reviewers"] = world["named"]
    return definition_create(roles=world["roles"], name=name, fallback_reviewer=fallback, **settings)


def expected_by_the_previous_code(definition, now):
    transient = ReviewInstance(definition=definition, occurrence=99, starts_at=now, ends_at=now)
    items, links = snapshot_items(definition, transient, now)
    return (
        {item_key(item): tuple(getattr(item, field) for field in ITEM_FIELDS) for item in items},
        sorted((item_key(link.item), link.reviewer_id) for link in links),
    )


@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_the_set_based_start_writes_what_the_previous_code_did(world, now, name):
    definition = definition_for(world, name)
    expected_items, expected_links = expected_by_the_previous_code(definition, now)
    emails_before = set(Email.objects.values_list("pk", flat=True))

    instance = services.review_instance_start(definition=definition, occurrence=0, starts_at=now, now=now)

    items = list(instance.items.all())
    assert {item_key(item): tuple(getattr(item, field) for field in ITEM_FIELDS) for item in items} == (
        expected_items
    )
    assert len(items) == len(expected_items) == instance.item_count
    links = ReviewerAssignment.objects.filter(item__instance=instance).select_related("item")
    assert sorted((item_key(link.item), link.reviewer_id) for link in links) == expected_links
    reviewers = {reviewer for _, reviewer in expected_links}
    emails = Email.objects.exclude(pk__in=emails_before)
    assert sorted(emails.values_list("to", flat=True)) == sorted(
        f"{user.username}@example.test" for user in User.objects.filter(pk__in=reviewers)
    )
    assert set(emails.values_list("template", flat=True)) == {"review-started"}
    [event] = AuditEvent.objects.filter(action="review.started", target_id=str(instance.pk))
    assert (event.details["definition"], event.details["items"]) == (name, len(expected_items))
    assert event.occurred_at == now


def test_the_data_set_covers_every_source_rule_and_fallback(world, now):
    """The comparison above is only as good as its data: each kind of item, recommendation,
    sign-in source and reviewer path occurs in it."""
    reasons, kinds, sources, fallback_used = [], set(), set(), False
    for name in DEFINITIONS:
        definition = definition_for(world, name)
        items, links = expected_by_the_previous_code(definition, now)
        reasons += [row[ITEM_FIELDS.index("recommendation_reason")] for row in items.values()]
        kinds |= {(kind, row[1] is not None) for (kind, _), row in items.items()}
        sources |= {row[ITEM_FIELDS.index("last_sign_in_source")] for row in items.values()}
        fallback_used |= any(reviewer == world["fallback"].pk for _, reviewer in links)
        fallback_used |= any(reviewer == world["admin"].pk for _, reviewer in links)
    assert kinds == {("eligible", False), ("eligible", True), ("active", False), ("active", True)}
    assert sources == {"", "portal", "directory", "directory_non_interactive"}
    for fragment in (
        "(the portal)",
        "(Entra ID)",
        "(Entra ID, non-interactive)",
        "never in the window",
        "Activated the role on",
        "Signed in on",
        "Has not activated the role",
        "Has not signed in",
    ):
        assert any(fragment in reason for reason in reasons), fragment
    assert fallback_used


# --- Statements do not grow with the items; one broker message -----------------------------


def holders(role, count: int, managers) -> None:
    group = DirectoryGroupFactory(name=f"Team of {count}")
    group.members.add(managers[0])
    EligibleAssignmentFactory(user=None, group=group, role=role)
    for n in range(count - 1):
        user = UserFactory(username=f"h{count}-{n}", manager=managers[n % len(managers)])
        EligibleAssignmentFactory(user=user, role=role)


def email_statements(count: int) -> int:
    """The INSERTs of `count` emails (one on PostgreSQL; SQLite takes 999 parameters at most)."""
    fields = [field for field in Email._meta.concrete_fields if not field.primary_key]
    return math.ceil(count / connection.ops.bulk_batch_size(fields, [Email()] * count))


@pytest.mark.parametrize("reviewer_type", ["manager", "owners", "named", "self"])
def test_the_start_takes_no_more_statements_for_200_items_than_for_10(
    reviewer_type, admin, django_assert_max_num_queries
):
    managers = [UserFactory(username=f"manager{n}") for n in range(3)]
    now = timezone.now()
    counts = []
    for count in (10, 200):
        role = RoleFactory(name=f"Role of {count}")
        role.owners.add(*managers)
        holders(role, count, managers)
        definition = definition_create(
            roles=[role],
            name=f"{reviewer_type} {count}",
            reviewer_type=reviewer_type,
            named_reviewers=managers,
        )
        # A self-review has a reviewer (an email) per holder: only the email INSERT may split.
        allowed = counts[0] - 1 + email_statements(count) if counts else 10_000
        with django_assert_max_num_queries(allowed) as captured:
            instance = services.review_instance_start(
                definition=definition, occurrence=0, starts_at=now, now=now
            )
        counts.append(len(captured.captured_queries))
        assert instance.item_count == count
        assert ReviewerAssignment.objects.filter(item__instance=instance).count() >= count


def test_the_reviewers_emails_reach_the_broker_as_one_message(
    role_with_holders, django_capture_on_commit_callbacks
):
    role, managers = role_with_holders
    published = []

    def publish(task, *args):
        published.append((task.name, args))
        return True

    definition = definition_create(roles=[role], reviewer_type="manager")
    now = timezone.now()
    with mock.patch("notifications.services.task_publish", side_effect=publish):
        with django_capture_on_commit_callbacks(execute=True):
            instance = services.review_instance_start(
                definition=definition, occurrence=0, starts_at=now, now=now
            )

    emails = Email.objects.filter(template="review-started")
    assert sorted(emails.values_list("to", flat=True)) == sorted(m.email for m in managers)
    assert [(name, sorted(args[0])) for name, args in published] == [
        ("notifications.tasks.email_send_many", sorted(emails.values_list("pk", flat=True)))
    ]
    assert instance.item_count == 60


@pytest.fixture
def role_with_holders(db):
    role = RoleFactory(name="Payroll Administrator")
    managers = [UserFactory(username=f"manager{n}") for n in range(5)]
    for n in range(60):
        EligibleAssignmentFactory(user=UserFactory(username=f"h{n}", manager=managers[n % 5]), role=role)
    return role, managers
