"""Each alert rule fires on a fixture that should trigger it and stays silent on one that
should not."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from alerts import rules
from alerts.rules import GLOBAL_ADMINISTRATOR, KINDS
from audit.services import audit_record
from reviews.models import ReviewDefinition, ReviewInstance
from roles.models import Role
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def found(kind, now=None):
    """The ids of the items the rule finds now (over all its findings)."""
    findings = KINDS[kind].rule(now=now or timezone.now())
    return {entry["id"] for finding in findings for entry in finding.items}


def test_roles_without_mfa_fires_for_a_privileged_role_only():
    lax = RoleFactory(role_settings__require_mfa=False)
    strict = RoleFactory(role_settings__require_mfa=True)
    harmless = RoleFactory(privileged=False, tier=Role.Tier.STANDARD, role_settings__require_mfa=False)
    ids = found("roles_without_mfa")
    assert str(lax.pk) in ids
    assert str(strict.pk) not in ids
    assert str(harmless.pk) not in ids


def test_critical_roles_without_approval_fires_for_critical_tier_only():
    open_critical = RoleFactory(tier=Role.Tier.CRITICAL)
    approved = RoleFactory(tier=Role.Tier.CRITICAL, role_settings__require_approval=True)
    high = RoleFactory(tier=Role.Tier.HIGH)
    ids = found("critical_roles_without_approval")
    assert str(open_critical.pk) in ids
    assert str(approved.pk) not in ids
    assert str(high.pk) not in ids


def test_long_activation_duration_fires_above_the_threshold(settings):
    settings.PIM_ALERT_MAX_ACTIVATION_HOURS = 8
    long = RoleFactory(role_settings__activation_max_duration=timedelta(hours=12))
    fine = RoleFactory(role_settings__activation_max_duration=timedelta(hours=8))
    ids = found("long_activation_duration")
    assert str(long.pk) in ids
    assert str(fine.pk) not in ids


def test_permanent_active_assignment_of_a_privileged_role_fires():
    standing = ActiveAssignmentFactory(ends_at=None)
    bounded = ActiveAssignmentFactory()
    harmless = ActiveAssignmentFactory(ends_at=None, role=RoleFactory(privileged=False))
    ended = ActiveAssignmentFactory(ends_at=None, ended_at=timezone.now() - timedelta(minutes=1))
    ids = found("permanent_active_assignments")
    assert ids >= {str(standing.pk)}
    assert not ids & {str(bounded.pk), str(harmless.pk), str(ended.pk)}


def test_permanent_eligible_assignment_of_a_critical_role_fires():
    critical = EligibleAssignmentFactory(ends_at=None, role=RoleFactory(tier=Role.Tier.CRITICAL))
    high = EligibleAssignmentFactory(ends_at=None, role=RoleFactory(tier=Role.Tier.HIGH))
    bounded = EligibleAssignmentFactory(role=RoleFactory(tier=Role.Tier.CRITICAL))
    ids = found("permanent_eligible_critical")
    assert str(critical.pk) in ids
    assert not ids & {str(high.pk), str(bounded.pk)}


def _global_administrator():
    return Role.objects.get(kind=Role.Kind.ENTRA, template_id=GLOBAL_ADMINISTRATOR)


def test_too_many_global_admins_needs_the_count_and_the_share():
    ga = _global_administrator()
    holders = EligibleAssignmentFactory.create_batch(3, role=ga)
    assert found("too_many_global_admins") == {str(a.pk) for a in holders}


def test_two_global_admins_are_not_too_many():
    EligibleAssignmentFactory.create_batch(2, role=_global_administrator())
    assert found("too_many_global_admins") == set()


def test_three_global_admins_among_many_assignments_are_not_too_many(settings):
    settings.PIM_ALERT_GLOBAL_ADMIN_PERCENT = 10
    EligibleAssignmentFactory.create_batch(3, role=_global_administrator())
    other = RoleFactory()
    group_members = DirectoryGroupFactory.create_batch(28)
    for group in group_members:  # 3 of 31 privileged assignments: under 10 %
        EligibleAssignmentFactory(user=None, group=group, role=other)
    assert found("too_many_global_admins") == set()


def test_unused_eligibility_fires_after_n_days_without_activation(settings):
    settings.PIM_ALERT_UNUSED_DAYS = 30
    now = timezone.now()
    unused = EligibleAssignmentFactory(starts_at=now - timedelta(days=40))
    used = EligibleAssignmentFactory(starts_at=now - timedelta(days=40))
    ActiveAssignmentFactory(
        user=used.user,
        role=used.role,
        eligible=used,
        origin="activation",
        starts_at=now - timedelta(days=5),
        ends_at=now - timedelta(days=5) + timedelta(hours=1),
    )
    young = EligibleAssignmentFactory(starts_at=now - timedelta(days=10))
    ids = found("unused_eligibilities", now)
    assert str(unused.pk) in ids
    assert not ids & {str(used.pk), str(young.pk)}


def _activations(user, role, starts):
    for start in starts:
        ActiveAssignmentFactory(
            user=user, role=role, origin="activation", starts_at=start, ends_at=start + timedelta(hours=1)
        )


def test_frequent_activations_fire_for_three_within_the_window(settings):
    settings.PIM_ALERT_RENEWAL_WINDOW_HOURS = 24
    now = timezone.now()
    busy, calm = UserFactory(), UserFactory()
    role = RoleFactory()
    _activations(busy, role, [now - timedelta(days=3, hours=h) for h in (1, 5, 9)])
    _activations(calm, role, [now - timedelta(days=d) for d in (2, 4, 6)])
    ids = found("frequent_activations", now)
    assert ids == {f"{busy.pk}:{role.pk}"}


def test_roles_assigned_outside_the_portal_come_from_the_registered_sources(monkeypatch):
    seen = {"type": "drift_finding", "id": "7", "label": "Global Administrator — abc at /"}
    monkeypatch.setattr(rules, "OUTSIDE_PORTAL_SOURCES", [lambda: [seen]])

    findings = KINDS["assigned_outside_portal"].rule(now=timezone.now())

    assert [finding.items for finding in findings] == [[seen]]


def test_roles_assigned_outside_the_portal_stay_silent_without_items(monkeypatch):
    monkeypatch.setattr(rules, "OUTSIDE_PORTAL_SOURCES", [list])

    assert found("assigned_outside_portal") == set()


def test_roles_not_reviewed_fire_without_a_recent_review(settings):
    settings.PIM_ALERT_REVIEW_DAYS = 90
    now = timezone.now()
    unreviewed = EligibleAssignmentFactory(starts_at=now - timedelta(days=120)).role
    reviewed = EligibleAssignmentFactory(starts_at=now - timedelta(days=120)).role
    young = EligibleAssignmentFactory(starts_at=now - timedelta(days=10)).role
    definition = ReviewDefinition.objects.create(name="Quarterly", start_date=now.date())
    definition.roles.add(reviewed)
    ReviewInstance.objects.create(
        definition=definition,
        occurrence=0,
        starts_at=now - timedelta(days=20),
        ends_at=now - timedelta(days=6),
    )
    ids = found("roles_not_reviewed", now)
    assert str(unreviewed.pk) in ids
    assert not ids & {str(reviewed.pk), str(young.pk)}


def _aged_user(**fields):
    user = UserFactory()
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=90), **fields)
    return user


def test_stale_accounts_fire_for_privileged_holders_who_do_not_sign_in(settings):
    settings.PIM_ALERT_STALE_SIGN_IN_DAYS = 30
    now = timezone.now()
    stale = _aged_user(last_sign_in_at=now - timedelta(days=40))
    never = _aged_user()
    fresh = _aged_user(last_sign_in_at=now - timedelta(days=1))
    unprivileged = _aged_user()
    member = _aged_user()
    group = DirectoryGroupFactory()
    group.members.add(member)
    for user in (stale, never, fresh):
        EligibleAssignmentFactory(user=user)
    EligibleAssignmentFactory(user=unprivileged, role=RoleFactory(privileged=False))
    EligibleAssignmentFactory(user=None, group=group)
    newcomer = UserFactory()  # joined today: not stale yet
    EligibleAssignmentFactory(user=newcomer)
    ids = found("stale_accounts", now)
    assert {str(stale.pk), str(never.pk), str(member.pk)} <= ids
    assert not ids & {str(fresh.pk), str(unprivileged.pk), str(newcomer.pk)}


def test_every_break_glass_sign_in_is_an_alert_of_its_own():
    root = UserFactory(is_superuser=True)
    first = audit_record(action="auth.break_glass_sign_in", actor=root, target=root)
    audit_record(action="auth.sign_in", actor=root, target=root)
    second = audit_record(action="auth.break_glass_sign_in", actor=root, target=root)
    findings = KINDS["break_glass_sign_in"].rule(now=timezone.now())
    assert [f.key for f in findings] == [str(first.seq), str(second.seq)]


def test_no_break_glass_alert_without_a_break_glass_sign_in():
    user = UserFactory()
    audit_record(action="auth.sign_in", actor=user, target=user)
    assert KINDS["break_glass_sign_in"].rule(now=timezone.now()) == []
