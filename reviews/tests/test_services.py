"""Review services: runs on time, bulk start, reviewers, recommendations from real activation
history, decisions, undecided items, idempotent apply."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activations.services import activation_request
from audit.models import AuditEvent
from notifications.models import Email
from reviews import services
from reviews.models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem
from roles.models import ActiveAssignment, EligibleAssignment
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
)

from .helpers import definition_create, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def reviewer_names(item) -> list[str]:
    return sorted(item.reviewers.values_list("username", flat=True))


def items_by_username(instance) -> dict:
    return {item.user.username: item for item in instance.items.select_related("user")}


# --- Runs on time --------------------------------------------------------------------------


def daily_ticks(first: datetime, days: int):
    for day in range(days):
        yield first + timedelta(days=day, hours=12)


@pytest.mark.parametrize(
    ("recurrence", "start_date", "expected"),
    [
        (
            "monthly",
            date(2028, 1, 31),  # 2028 is a leap year
            [
                date(2028, 1, 31),
                date(2028, 2, 29),
                date(2028, 3, 31),
                date(2028, 4, 30),
                date(2028, 5, 31),
                date(2028, 6, 30),
                date(2028, 7, 31),
                date(2028, 8, 31),
                date(2028, 9, 30),
                date(2028, 10, 31),
                date(2028, 11, 30),
                date(2028, 12, 31),
            ],
        ),
        (
            "quarterly",
            date(2027, 11, 30),
            [date(2027, 11, 30), date(2028, 2, 29), date(2028, 5, 30), date(2028, 8, 30), date(2028, 11, 30)],
        ),
        ("semiannually", date(2027, 8, 31), [date(2027, 8, 31), date(2028, 2, 29), date(2028, 8, 31)]),
        ("annually", date(2028, 2, 29), [date(2028, 2, 29)]),
        ("once", date(2027, 12, 15), [date(2027, 12, 15)]),
    ],
)
def test_the_start_job_run_daily_for_a_year_starts_each_run_on_its_day(
    recurrence, start_date, expected, role
):
    EligibleAssignmentFactory(role=role, ends_at=None)
    with time_machine.travel(datetime(2027, 6, 1, tzinfo=UTC), tick=False):
        definition = definition_create(
            roles=[role], recurrence=recurrence, start_date=start_date, duration_days=7
        )
    for moment in daily_ticks(datetime(2027, 6, 1, tzinfo=UTC), 589):  # to 10 January 2029
        with time_machine.travel(moment, tick=False):
            services.review_instances_start_due()
            services.review_instances_start_due()  # a doubled tick starts nothing twice
            services.review_instances_close_due()
    runs = list(definition.instances.order_by("starts_at"))
    assert [run.starts_at.date() for run in runs] == expected
    assert all(run.starts_at.time() == datetime.min.time() for run in runs)  # 00:00 UTC
    assert all(run.ends_at == run.starts_at + timedelta(days=7) for run in runs)
    assert [run.occurrence for run in runs] == list(range(len(expected)))
    assert {run.status for run in runs} == {ReviewInstance.Status.APPLIED}


def test_a_run_whose_window_passed_while_the_portal_was_down_is_skipped_not_started_late(role):
    EligibleAssignmentFactory(role=role)
    definition = definition_create(
        roles=[role], recurrence="monthly", start_date=date(2027, 1, 10), duration_days=5
    )
    with time_machine.travel(datetime(2027, 1, 20, tzinfo=UTC), tick=False):
        assert services.review_instances_start_due() == []
    with time_machine.travel(datetime(2027, 2, 11, tzinfo=UTC), tick=False):
        [run] = services.review_instances_start_due()
    assert run.occurrence == 1 and definition.instances.count() == 1


def test_a_disabled_definition_starts_nothing(role):
    EligibleAssignmentFactory(role=role)
    definition_create(roles=[role], enabled=False)
    assert services.review_instances_start_due() == []


# --- Starting is bulk ----------------------------------------------------------------------


def start_queries(role, manager, count: int) -> int:
    for n in range(count):
        EligibleAssignmentFactory(role=role, user=UserFactory(username=f"p{count}-{n}", manager=manager))
    definition = definition_create(roles=[role], name=f"Review of {count}", recurrence="once")
    with CaptureQueriesContext(connection) as queries:
        instance = services.review_instance_start(
            definition=definition, occurrence=0, starts_at=timezone.now(), now=timezone.now()
        )
    assert instance.item_count == count
    assert ReviewerAssignment.objects.filter(item__instance=instance).count() == count
    return len(queries.captured_queries)


def test_starting_a_run_takes_the_same_number_of_queries_for_10_or_300_assignments(role):
    manager = UserFactory(username="manager")
    small = start_queries(role, manager, 10)
    large = start_queries(RoleFactory(name="Ledger Administrator"), manager, 300)
    assert small == large  # set-based: no query per item, no statement split by size


# --- Reviewers -----------------------------------------------------------------------------


def test_managers_review_their_reports_and_the_fallback_those_without_a_manager(role, reviewer):
    report = UserFactory(username="report", manager=reviewer)
    orphan = UserFactory(username="orphan")
    fallback = UserFactory(username="fallback")
    for user in (report, orphan):
        EligibleAssignmentFactory(user=user, role=role)
    instance = start(definition_create(roles=[role], fallback_reviewer=fallback))
    items = items_by_username(instance)
    assert reviewer_names(items["report"]) == ["reviewer"]
    assert reviewer_names(items["orphan"]) == ["fallback"]


def test_an_inactive_fallback_reviewer_is_replaced_by_the_pim_administrators(role, admin):
    fallback = UserFactory(username="fallback", is_active=False)
    EligibleAssignmentFactory(user=UserFactory(username="orphan"), role=role)
    instance = start(definition_create(roles=[role], fallback_reviewer=fallback))
    assert reviewer_names(instance.items.get()) == ["pimadmin"]


def test_nobody_reviews_their_own_access_unless_the_review_is_a_self_review(role, reviewer, requester):
    EligibleAssignmentFactory(user=reviewer, role=role)
    EligibleAssignmentFactory(user=requester, role=role)
    fallback = UserFactory(username="fallback")
    named = definition_create(
        roles=[role],
        name="Named",
        reviewer_type="named",
        named_reviewers=[reviewer, requester],
        fallback_reviewer=fallback,
    )
    items = items_by_username(start(named))
    assert reviewer_names(items["reviewer"]) == ["requester"]
    assert reviewer_names(items["requester"]) == ["reviewer"]

    own = definition_create(roles=[role], name="Self", reviewer_type="self")
    items = items_by_username(start(own))
    assert reviewer_names(items["reviewer"]) == ["reviewer"]
    assert reviewer_names(items["requester"]) == ["requester"]


def test_a_member_of_a_reviewed_group_does_not_review_the_group(role, reviewer, requester):
    group = DirectoryGroupFactory(name="Payroll team")
    group.members.add(reviewer)
    EligibleAssignmentFactory(user=None, group=group, role=role)
    definition = definition_create(
        roles=[role], reviewer_type="named", named_reviewers=[reviewer], fallback_reviewer=requester
    )
    item = start(definition).items.get()
    assert item.principal_label == "group Payroll team"
    assert reviewer_names(item) == ["requester"]


def test_owners_review_their_roles(role, reviewer, requester):
    role.owners.add(reviewer)
    EligibleAssignmentFactory(user=requester, role=role)
    item = start(definition_create(roles=[role], reviewer_type="owners")).items.get()
    assert reviewer_names(item) == ["reviewer"]


# --- Recommendations from real activation history -----------------------------------------


def activate(user, eligible, at):
    with time_machine.travel(at, tick=False):
        return activation_request(
            requester=user,
            eligible=eligible,
            duration=timedelta(hours=1),
            justification="Month-end payroll run",
            mfa_verified_at=timezone.now(),
        )


def test_recommendations_come_from_real_activations_in_the_window(role, reviewer):
    now = timezone.now()
    users = {name: UserFactory(username=name, manager=reviewer) for name in ("recent", "stale", "never")}
    eligibles = {
        name: EligibleAssignmentFactory(
            user=user, role=role, starts_at=now - timedelta(days=100), ends_at=now + timedelta(days=100)
        )
        for name, user in users.items()
    }
    recent = activate(users["recent"], eligibles["recent"], now - timedelta(days=10))
    activate(users["stale"], eligibles["stale"], now - timedelta(days=45))
    assert recent.status == "granted"
    assert ActiveAssignment.objects.filter(origin="activation", role=role).count() == 2

    items = items_by_username(start(definition_create(roles=[role], inactivity_days=30)))
    assert items["recent"].recommendation == "approve"
    assert items["recent"].last_activation_at is not None
    assert items["recent"].recommendation_reason.startswith("Activated the role on")
    assert items["stale"].recommendation == "deny"
    assert "Has not activated the role in the last 30 days (last on" in items["stale"].recommendation_reason
    assert items["never"].recommendation == "deny"
    assert "never in the window" in items["never"].recommendation_reason


def test_an_activation_date_names_no_sign_in_source(role, reviewer):
    """The reason for an eligibility quotes the last activation, a date of the portal's own: the
    person's sign-in source (here Entra) belongs to sign-in dates only."""
    now = timezone.now()
    user = UserFactory(username="recent", manager=reviewer, directory_sign_in_at=now - timedelta(days=1))
    eligible = EligibleAssignmentFactory(
        user=user, role=role, starts_at=now - timedelta(days=100), ends_at=now + timedelta(days=100)
    )
    activate(user, eligible, now - timedelta(days=10))

    item = items_by_username(start(definition_create(roles=[role], inactivity_days=30)))["recent"]

    assert item.last_sign_in_source == "directory"  # the sign-in is Entra's...
    assert item.recommendation_reason == f"Activated the role on {(now - timedelta(days=10)):%Y-%m-%d}."


def test_active_assignments_are_recommended_from_the_last_sign_in(role, reviewer):
    now = timezone.now()
    seen = UserFactory(username="seen", manager=reviewer, last_sign_in_at=now - timedelta(days=3))
    gone = UserFactory(username="gone", manager=reviewer)
    for user in (seen, gone):
        ActiveAssignmentFactory(user=user, role=role, origin="direct", ends_at=now + timedelta(days=60))
    ActiveAssignmentFactory(user=UserFactory(username="activated"), role=role, origin="activation")
    definition = definition_create(roles=[role], review_eligible=False, review_active=True)
    items = items_by_username(start(definition))
    assert set(items) == {"seen", "gone"}  # activations end by themselves: not reviewed
    assert items["seen"].recommendation == "approve"
    assert items["gone"].recommendation == "deny" and "signed in" in items["gone"].recommendation_reason


def test_recommendations_can_be_switched_off(role, requester):
    EligibleAssignmentFactory(user=requester, role=role)
    item = start(definition_create(roles=[role], recommendations=False)).items.get()
    assert item.recommendation == "" and item.recommendation_reason == ""


# --- Deciding ------------------------------------------------------------------------------


@pytest.fixture
def run(role, reviewer, requester):
    requester.manager = reviewer
    requester.save()
    EligibleAssignmentFactory(user=requester, role=role, ends_at=timezone.now() + timedelta(days=200))
    return start(definition_create(roles=[role], justification_required=True))


def test_a_decision_is_recorded_and_audited(run, reviewer):
    item = run.items.get()
    services.review_item_decide(reviewer=reviewer, item=item, decision="deny", justification="Left payroll")
    item.refresh_from_db()
    assert (item.decision, item.justification, item.decided_by) == ("deny", "Left payroll", reviewer)
    event = AuditEvent.objects.get(action="review.decided")
    assert event.actor == reviewer and event.details["decision"] == "deny"
    assert event.details["justification"] == "Left payroll"


def test_a_decision_can_be_changed_until_the_end_and_not_after(run, reviewer):
    item = run.items.get()
    services.review_item_decide(reviewer=reviewer, item=item, decision="deny", justification="Unsure")
    services.review_item_decide(reviewer=reviewer, item=item, decision="approve", justification="Checked")
    assert ReviewItem.objects.get(pk=item.pk).decision == "approve"
    with time_machine.travel(run.ends_at, tick=False):
        with pytest.raises(services.ReviewError, match="has ended"):
            services.review_item_decide(reviewer=reviewer, item=item, decision="deny", justification="x")
    assert ReviewItem.objects.get(pk=item.pk).decision == "approve"


def test_decisions_after_an_early_end_are_refused(run, reviewer, admin):
    services.review_instance_end_early(actor=admin, instance=run)
    with pytest.raises(services.ReviewError, match="has ended"):
        services.review_item_decide(
            reviewer=reviewer, item=run.items.get(), decision="approve", justification="x"
        )


def test_a_reviewer_cannot_decide_items_not_assigned_to_them(run, outsider, requester):
    item = run.items.get()
    for person in (outsider, requester):
        with pytest.raises(PermissionDenied):
            services.review_item_decide(reviewer=person, item=item, decision="approve", justification="Me")
    assert ReviewItem.objects.get(pk=item.pk).decision == ""
    assert not AuditEvent.objects.filter(action="review.decided").exists()


def test_a_bulk_decision_with_one_foreign_item_decides_nothing(run, reviewer, outsider):
    vault = RoleFactory(name="Vault Keeper")
    EligibleAssignmentFactory(user=UserFactory(username="vaulter", manager=outsider), role=vault)
    foreign = start(definition_create(roles=[vault], name="Vault review")).items.get()
    mine = run.items.get()
    with pytest.raises(PermissionDenied):
        services.review_items_decide(
            reviewer=reviewer, items=[mine, foreign], decision="deny", justification="Not needed"
        )
    assert not ReviewItem.objects.exclude(decision="").exists()


def test_a_justification_is_required_when_the_review_says_so(run, reviewer):
    with pytest.raises(services.ReviewError, match="justification is required"):
        services.review_item_decide(reviewer=reviewer, item=run.items.get(), decision="approve")


# --- The end: undecided items, applying ----------------------------------------------------


def undecided_run(role, reviewer, default_decision, **extra):
    """Three undecided eligibilities: recently activated, never activated, and one approved."""
    now = timezone.now()
    users = {n: UserFactory(username=n, manager=reviewer) for n in ("used", "unused", "approved")}
    for name, user in users.items():
        eligible = EligibleAssignmentFactory(
            user=user, role=role, starts_at=now - timedelta(days=60), ends_at=now + timedelta(days=200)
        )
        if name == "used":
            activate(user, eligible, now - timedelta(days=5))
    instance = start(definition_create(roles=[role], default_decision=default_decision, **extra))
    approved = items_by_username(instance)["approved"]
    services.review_item_decide(reviewer=reviewer, item=approved, decision="approve", justification="ok")
    return instance


@pytest.mark.parametrize(
    ("default_decision", "expected"),
    [
        ("no_change", {"used": "unchanged", "unused": "unchanged", "approved": "kept"}),
        ("remove", {"used": "removed", "unused": "removed", "approved": "kept"}),
        ("approve", {"used": "kept", "unused": "kept", "approved": "kept"}),
        ("recommendation", {"used": "kept", "unused": "removed", "approved": "kept"}),
    ],
)
def test_undecided_items_follow_the_default_decision(role, reviewer, default_decision, expected):
    instance = undecided_run(role, reviewer, default_decision)
    with time_machine.travel(instance.ends_at, tick=False):
        assert services.review_instances_close_due() == 1
    items = items_by_username(instance)
    assert {name: item.outcome for name, item in items.items()} == expected
    for name, outcome in expected.items():
        eligibility = EligibleAssignment.objects.get(user__username=name, role=role)
        assert (eligibility.end_reason == "review") is (outcome == "removed")
    removals = AuditEvent.objects.filter(action="eligible_assignment.removed")
    assert removals.count() == list(expected.values()).count("removed")
    for event in removals:
        assert 'Not decided in access review "Quarterly access review"' in event.details["reason"]
        assert event.actor_label == "system"


def test_applying_is_idempotent(run, reviewer, admin):
    item = run.items.get()
    services.review_item_decide(reviewer=reviewer, item=item, decision="deny", justification="Left payroll")
    services.review_instance_end_early(actor=admin, instance=run)  # auto_apply: applied at once
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.APPLIED
    events, emails = AuditEvent.objects.count(), Email.objects.count()
    applied_at = ReviewItem.objects.get(pk=item.pk).applied_at

    assert services.review_instance_apply(actor=admin, instance=run) == {}
    assert services.review_instance_apply(actor=None, instance=run) == {}
    assert services.review_instances_close_due(now=run.ends_at + timedelta(days=1)) == 0
    assert (AuditEvent.objects.count(), Email.objects.count()) == (events, emails)
    assert ReviewItem.objects.get(pk=item.pk).applied_at == applied_at


def test_a_denial_removes_the_eligibility_and_its_live_activation_and_tells_the_holder(
    role, reviewer, requester, admin, django_capture_on_commit_callbacks
):
    requester.manager = reviewer
    requester.save()
    eligible = EligibleAssignmentFactory(
        user=requester, role=role, ends_at=timezone.now() + timedelta(days=90)
    )
    activation_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(hours=2),
        justification="Payroll",
        mfa_verified_at=timezone.now(),
    )
    instance = start(definition_create(roles=[role], auto_apply=False))
    services.review_item_decide(
        reviewer=reviewer, item=instance.items.get(), decision="deny", justification="<b>Left</b> payroll"
    )
    instance = services.review_instance_end_early(actor=admin, instance=instance)
    assert instance.status == ReviewInstance.Status.CLOSED  # not applied automatically
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.review_instance_apply(actor=admin, instance=instance)
    assert counts == {"removed": 1}
    eligible.refresh_from_db()
    assert eligible.end_reason == "review" and eligible.ended_by == admin
    assert ActiveAssignment.objects.filter(user=requester, role=role, origin="activation").exists()
    assert not ActiveAssignment.objects.filter(user=requester, role=role).current(timezone.now()).exists()
    removal = AuditEvent.objects.get(action="eligible_assignment.removed")
    assert removal.details["reason"] == (
        'Denied in access review "Quarterly access review" by Rene Reviewer <reviewer>: <b>Left</b> payroll'
    )
    assert AuditEvent.objects.filter(action="review.applied", actor_id=admin.pk).exists()
    [message] = mail.outbox
    assert message.to == [requester.email]
    assert "removed by an access review" in message.subject
    html = message.alternatives[0][0]
    assert "&lt;b&gt;Left&lt;/b&gt; payroll" in html and "<b>Left</b>" not in html


def test_a_removal_refused_by_anti_lockout_is_recorded_not_half_applied(reviewer, admin):
    from tests.factories import portal_role

    pim_admin = portal_role("pim.administrator")
    assert pim_admin.lockout_protected
    admin.manager = reviewer
    admin.save()
    ActiveAssignment.objects.filter(user=admin).update(ends_at=None, origin="direct")
    definition = definition_create(
        roles=[pim_admin], review_eligible=False, review_active=True, default_decision="remove"
    )
    instance = start(definition)
    with time_machine.travel(instance.ends_at, tick=False):
        services.review_instances_close_due()
    item = instance.items.get()
    assert item.outcome == "refused" and item.outcome_detail
    assert ActiveAssignment.objects.get(user=admin).ended_at is None


def test_ending_early_without_auto_apply_waits_for_an_administrator(run, admin):
    ReviewDefinition.objects.filter(pk=run.definition_id).update(auto_apply=False)
    instance = services.review_instance_end_early(actor=admin, instance=run)
    assert instance.status == ReviewInstance.Status.CLOSED and instance.ends_at <= timezone.now()
    assert services.review_instances_close_due() == 0  # nothing left for the job
    with pytest.raises(services.ReviewError, match="not running"):
        services.review_instance_end_early(actor=admin, instance=instance)


def test_only_review_administrators_end_or_apply_runs(run, auditor, reviewer):
    for person in (auditor, reviewer):
        with pytest.raises(PermissionDenied):
            services.review_instance_end_early(actor=person, instance=run)
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.ACTIVE


def test_reminders_go_once_halfway_to_reviewers_with_undecided_items(
    run, reviewer, django_capture_on_commit_callbacks
):
    halfway = run.starts_at + (run.ends_at - run.starts_at) / 2
    with time_machine.travel(halfway - timedelta(minutes=1), tick=False):
        assert services.review_reminders_send_due() == 0
    mail.outbox.clear()
    with time_machine.travel(halfway, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert services.review_reminders_send_due() == 1
    with time_machine.travel(halfway + timedelta(hours=1), tick=False):
        assert services.review_reminders_send_due() == 0
    [message] = mail.outbox
    assert message.to == [reviewer.email] and "/reviews/mine/" in message.body


def test_a_removal_the_applying_administrator_may_not_make_is_recorded_as_refused(run, reviewer):
    reviews_only = RoleFactory(
        name="Review Coordinator", grants_permissions=["reviews.change_reviewdefinition"]
    )
    coordinator = UserFactory(username="coordinator")
    ActiveAssignmentFactory(user=coordinator, role=reviews_only)
    item = run.items.get()
    services.review_item_decide(reviewer=reviewer, item=item, decision="deny", justification="Left payroll")
    instance = services.review_instance_end_early(actor=coordinator, instance=run)
    item.refresh_from_db()
    assert instance.status == ReviewInstance.Status.APPLIED
    assert item.outcome == "refused" and "may not manage eligible assignments" in item.outcome_detail
    assert EligibleAssignment.objects.get(pk=item.eligible_id).ended_at is None
