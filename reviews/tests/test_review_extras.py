"""Don't know, Accept recommendations, taking a decision back, use now beside the snapshot,
the series' end (a date or a number of runs), a run longer than its recurrence refused, the
owners' completion email with the report attached, and the history report across runs."""

import io
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from notifications.models import Email, EmailAttachment
from reviews import services
from reviews.models import ReviewDefinition, ReviewInstance, ReviewItem
from roles.models import EligibleAssignment
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

from .helpers import definition_create, messages_of, page, signed_in, start

pytestmark = pytest.mark.django_db

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


@pytest.fixture
def run(role, reviewer):
    """Two of the reviewer's reports under review: `seen` signed in lately, `gone` never (so
    both are recommended for denial: neither activated the role)."""
    for name in ("gone", "seen"):
        user = UserFactory(username=name, manager=reviewer)
        EligibleAssignmentFactory(user=user, role=role, ends_at=timezone.now() + timedelta(days=200))
    return start(definition_create(roles=[role], justification_required=True, default_decision="remove"))


def item(run, username) -> ReviewItem:
    return run.items.get(user__username=username)


# --- Don't know ----------------------------------------------------------------------------


def test_dont_know_is_recorded_audited_counted_as_reviewed_and_keeps_the_access(run, reviewer, admin):
    target = item(run, "gone")
    services.review_item_decide(
        reviewer=reviewer, item=target, decision="dont_know", justification="New to me"
    )
    target.refresh_from_db()
    assert (target.decision, target.decided_by, target.justification) == ("dont_know", reviewer, "New to me")
    event = AuditEvent.objects.get(action="review.decided")
    assert event.details["decision"] == "dont_know"

    services.review_instance_end_early(actor=admin, instance=run)  # default: remove the undecided
    target.refresh_from_db()
    assert target.outcome == ReviewItem.Outcome.UNCHANGED
    assert EligibleAssignment.objects.get(pk=target.eligible_id).ended_at is None
    assert item(run, "seen").outcome == ReviewItem.Outcome.REMOVED  # undecided: the default


def test_dont_know_from_my_reviews(run, reviewer, verified_client):
    target = item(run, "gone")
    url = reverse("reviews:item_decide", args=[target.pk])
    response = verified_client(reviewer).post(
        url, {"decision": "dont_know", "justification": "Ask HR"}, follow=True
    )
    assert "Marked “don’t know”: " in " ".join(messages_of(response))
    target.refresh_from_db()
    assert target.decision == "dont_know"
    listed = page(verified_client(reviewer).get(reverse("reviews:my_reviews") + "?decision=dont_know"))
    assert f'id="item-{target.pk}"' in listed and f'id="item-{item(run, "seen").pk}"' not in listed


def test_an_unknown_decision_is_refused_and_changes_nothing(run, reviewer):
    with pytest.raises(services.ReviewError, match="approve, deny or don't know"):
        services.review_item_decide(
            reviewer=reviewer, item=item(run, "gone"), decision="maybe", justification="x"
        )
    assert not run.items.exclude(decision="").exists()


# --- Accept recommendations ----------------------------------------------------------------


def test_accepting_recommendations_decides_the_undecided_items_and_audits_them_as_such(run, reviewer):
    decided = item(run, "seen")
    services.review_item_decide(
        reviewer=reviewer, item=decided, decision="approve", justification="Payroll lead"
    )
    accepted = services.review_items_accept_recommendations(reviewer=reviewer)
    assert [i.user.username for i in accepted] == ["gone"]
    gone = item(run, "gone")
    assert (gone.decision, gone.from_recommendation, gone.decided_by) == ("deny", True, reviewer)
    assert gone.justification.startswith("Accepted the recommendation: Has not activated the role")
    assert item(run, "seen").decision == "approve"  # a decision already made stays
    [event] = AuditEvent.objects.filter(action="review.recommendation_accepted")
    assert event.actor == reviewer and event.details["decision"] == "deny"
    assert event.details["recommendation_reason"] == gone.recommendation_reason
    assert not AuditEvent.objects.filter(action="review.decided", target_id=str(gone.pk)).exists()


def test_accepting_recommendations_touches_only_the_reviewers_own_items(run, reviewer, outsider):
    assert services.review_items_accept_recommendations(reviewer=outsider) == []
    assert not run.items.exclude(decision="").exists()


def test_accepting_recommendations_after_the_end_is_refused(run, reviewer, admin):
    services.review_instance_end_early(actor=admin, instance=run)
    assert services.review_items_accept_recommendations(reviewer=reviewer) == []


def test_accept_recommendations_button_on_my_reviews(run, reviewer, verified_client):
    client = verified_client(reviewer)
    listed = page(client.get(reverse("reviews:my_reviews")))
    assert "2 undecided items have a recommendation" in listed
    response = client.post(reverse("reviews:accept_recommendations"), {"review": str(run.pk)}, follow=True)
    assert "Recommendations accepted: 2 items." in messages_of(response)
    assert set(run.items.values_list("decision", flat=True)) == {"deny"}
    assert 'id="accept-recommendations"' not in page(client.get(reverse("reviews:my_reviews")))


def test_accept_recommendations_by_get_changes_nothing(run, reviewer, verified_client):
    response = verified_client(reviewer).get(reverse("reviews:accept_recommendations"))
    assert response.status_code == 302
    assert not run.items.exclude(decision="").exists()


# --- Reset ---------------------------------------------------------------------------------


def test_a_decision_can_be_reset_before_the_end(run, reviewer):
    target = item(run, "gone")
    services.review_item_decide(reviewer=reviewer, item=target, decision="deny", justification="Left")
    services.review_item_reset(reviewer=reviewer, item=target)
    target.refresh_from_db()
    assert (target.decision, target.decided_by, target.decided_at, target.justification) == (
        "",
        None,
        None,
        "",
    )
    event = AuditEvent.objects.get(action="review.decision_reset")
    assert event.actor == reviewer and event.details["before"] == "deny"


def test_resetting_an_undecided_item_is_refused(run, reviewer):
    with pytest.raises(services.ReviewError, match="no decision to reset"):
        services.review_item_reset(reviewer=reviewer, item=item(run, "gone"))
    assert not AuditEvent.objects.filter(action="review.decision_reset").exists()


def test_a_decision_cannot_be_reset_after_the_end(run, reviewer, admin):
    target = item(run, "gone")
    services.review_item_decide(reviewer=reviewer, item=target, decision="approve", justification="Ok")
    services.review_instance_end_early(actor=admin, instance=run)
    with pytest.raises(services.ReviewError, match="has ended"):
        services.review_item_reset(reviewer=reviewer, item=target)
    target.refresh_from_db()
    assert target.decision == "approve"


def test_another_person_cannot_reset_a_decision(run, reviewer, outsider, verified_client):
    target = item(run, "gone")
    services.review_item_decide(reviewer=reviewer, item=target, decision="deny", justification="Left")
    with pytest.raises(PermissionDenied):
        services.review_item_reset(reviewer=outsider, item=target)
    response = verified_client(outsider).post(reverse("reviews:item_reset", args=[target.pk]))
    assert response.status_code == 404
    target.refresh_from_db()
    assert target.decision == "deny"


def test_reset_from_my_reviews(run, reviewer, verified_client):
    target = item(run, "gone")
    services.review_item_decide(reviewer=reviewer, item=target, decision="deny", justification="Left")
    client = verified_client(reviewer)
    assert "Reset decision" in page(client.get(reverse("reviews:my_reviews")))
    response = client.post(reverse("reviews:item_reset", args=[target.pk]), follow=True)
    assert "Decision reset: " in " ".join(messages_of(response))
    target.refresh_from_db()
    assert target.decision == ""


# --- Use: at the start and now -------------------------------------------------------------


def test_use_now_is_shown_beside_the_snapshot_each_labelled(run, reviewer, verified_client, clock):
    gone = UserFactory._meta.model.objects.get(username="gone")
    signed_in_at = timezone.now() + timedelta(minutes=5)
    clock.move_to(signed_in_at)
    gone.last_sign_in_at = signed_in_at
    gone.save(update_fields=["last_sign_in_at"])
    listed = page(verified_client(reviewer).get(reverse("reviews:my_reviews")))
    row = listed.split(f'id="item-{item(run, "gone").pk}"', 1)[1].split("</tr>", 1)[0]
    snapshot = row.split('class="usage-snapshot"', 1)[1].split("</dd>", 1)[0]
    live = row.split('class="usage-live"', 1)[1].split("</dd>", 1)[0]
    assert "At the review's start" in row and "<dt>Now</dt>" in row
    assert "Signed in: never" in snapshot
    assert f"Signed in: {signed_in_at:%Y-%m-%d %H:%M} UTC" in live


# --- The series: its end, and a run no longer than the recurrence ---------------------------


@pytest.mark.parametrize(("recurrence", "longest"), [("weekly", 7), ("monthly", 28), ("quarterly", 89)])
def test_a_run_longer_than_its_recurrence_is_refused_with_a_clear_error(role, admin, recurrence, longest):
    with pytest.raises(services.ReviewError) as refused:
        definition_create(roles=[role], actor=admin, recurrence=recurrence, duration_days=longest + 1)
    message = refused.value.message_dict["duration_days"][0]
    assert f"at most {longest} days (not {longest + 1})" in message
    assert not ReviewDefinition.objects.exists()
    assert definition_create(roles=[role], actor=admin, recurrence=recurrence, duration_days=longest)


def test_editing_a_definition_into_a_run_longer_than_its_recurrence_is_refused(role, admin):
    definition = definition_create(roles=[role], actor=admin, recurrence="monthly", duration_days=14)
    with pytest.raises(services.ReviewError):
        services.review_definition_update(actor=admin, definition=definition, recurrence="weekly")
    definition.refresh_from_db()
    assert definition.recurrence == "monthly"


def test_the_form_shows_the_recurrence_refusal_on_the_duration(role, admin, verified_client):
    client = verified_client(admin)
    response = client.post(
        reverse("reviews:definition_create"),
        {
            "name": "Weekly check",
            "roles": [str(role.pk)],
            "review_eligible": "on",
            "reviewer_type": "manager",
            "recurrence": "weekly",
            "start_date": "2026-03-02",
            "duration_days": "10",
            "inactivity_days": "30",
            "default_decision": "no_change",
        },
    )
    assert response.status_code == 200
    assert "a run may last at most 7 days (not 10)" in response.content.decode()
    assert not ReviewDefinition.objects.exists()


def test_an_end_date_and_a_run_count_together_are_refused(role, admin):
    with pytest.raises(services.ReviewError) as refused:
        definition_create(roles=[role], actor=admin, end_date=date(2027, 1, 1), max_runs=3)
    assert "not both" in refused.value.message_dict["max_runs"][0]


def test_an_end_date_before_the_start_is_refused(role, admin):
    with pytest.raises(services.ReviewError) as refused:
        definition_create(roles=[role], actor=admin, start_date=date(2026, 3, 2), end_date=date(2026, 3, 1))
    assert "end_date" in refused.value.message_dict


def weekly_runs(definition, first: datetime, weeks: int) -> int:
    started = 0
    for week in range(weeks):
        started += len(services.review_instances_start_due(now=first + timedelta(weeks=week, hours=1)))
    assert started == ReviewInstance.objects.filter(definition=definition).count()
    return started


def test_a_series_stops_after_its_number_of_runs(role, reviewer, admin):
    EligibleAssignmentFactory(user=UserFactory(manager=reviewer), role=role, ends_at=None)
    start_day = date(2026, 3, 2)
    definition = definition_create(
        roles=[role], actor=admin, recurrence="weekly", duration_days=7, start_date=start_day, max_runs=3
    )
    first = datetime.combine(start_day, datetime.min.time()).replace(tzinfo=UTC)
    assert weekly_runs(definition, first, 6) == 3


def test_a_series_stops_after_its_end_date(role, reviewer, admin):
    EligibleAssignmentFactory(user=UserFactory(manager=reviewer), role=role, ends_at=None)
    start_day = date(2026, 3, 2)
    definition = definition_create(
        roles=[role],
        actor=admin,
        recurrence="weekly",
        duration_days=7,
        start_date=start_day,
        end_date=start_day + timedelta(days=14),  # the third run starts on its last day
    )
    first = datetime.combine(start_day, datetime.min.time()).replace(tzinfo=UTC)
    assert weekly_runs(definition, first, 6) == 3


# --- The owners' email with the report -----------------------------------------------------


def test_the_owners_get_the_report_attached_when_the_run_ends_once(
    role, reviewer, admin, auditor, django_capture_on_commit_callbacks
):
    for name in ("gone", "seen"):
        EligibleAssignmentFactory(
            user=UserFactory(username=name, manager=reviewer),
            role=role,
            ends_at=timezone.now() + timedelta(days=90),
        )
    definition = definition_create(
        roles=[role], actor=admin, name="Payroll <quarterly> & co", owners=[auditor]
    )
    run = start(definition)
    services.review_items_accept_recommendations(reviewer=reviewer)
    mail.outbox.clear()
    with time_machine.travel(run.ends_at + timedelta(minutes=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.review_instances_close_due()
    [email] = Email.objects.filter(template="review-completed")
    assert email.to == auditor.email  # the owners, not the creator
    [attachment] = EmailAttachment.objects.filter(email=email)
    assert attachment.content_type == XLSX and attachment.filename.endswith(".xlsx")
    [sent] = [message for message in mail.outbox if message.to == [auditor.email]]
    assert "Payroll <quarterly> & co" in sent.subject
    assert "2 of 2 items decided: 0 approved, 2 denied" in sent.body
    [(filename, content, mimetype)] = sent.attachments
    assert (filename, mimetype) == (attachment.filename, XLSX)
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Principal" and len(rows) == 3
    assert {row[rows[0].index("Outcome")] for row in rows[1:]} == {"Removed"}
    assert {row[rows[0].index("Accepted recommendation")] for row in rows[1:]} == {"Yes"}
    assert AuditEvent.objects.get(action="review.report_emailed").details["to"] == [auditor.username]
    # Applying again (or a second close job) sends nothing more.
    services.review_instance_apply(actor=admin, instance=run)
    assert Email.objects.filter(template="review-completed").count() == 1


def test_without_owners_the_creator_gets_the_report_when_an_administrator_ends_the_run(
    run, admin, django_capture_on_commit_callbacks
):
    definition = run.definition
    definition.created_by = admin
    definition.auto_apply = False
    definition.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.review_instance_end_early(actor=admin, instance=run)
    [email] = Email.objects.filter(template="review-completed")
    assert email.to == admin.email and "results are not applied yet" in email.body_text
    assert email.attachments.count() == 1


# --- History across runs -------------------------------------------------------------------


def test_the_history_report_has_every_item_of_every_run(role, reviewer, admin, auditor, verified_client):
    EligibleAssignmentFactory(
        user=UserFactory(username="pat", manager=reviewer),
        role=role,
        starts_at=timezone.now() - timedelta(days=30),
        ends_at=None,
    )
    start_day = timezone.now().date() - timedelta(days=8)
    definition = definition_create(
        roles=[role], actor=admin, recurrence="weekly", duration_days=7, start_date=start_day
    )
    first = datetime.combine(start_day, datetime.min.time()).replace(tzinfo=UTC)
    weekly_runs(definition, first, 2)
    [old, new] = ReviewInstance.objects.filter(definition=definition).order_by("starts_at")
    services.review_item_decide(
        reviewer=reviewer, item=new.items.get(), decision="approve", justification="x"
    )

    detail = page(verified_client(auditor).get(reverse("reviews:definition_detail", args=[definition.pk])))
    assert 'id="history-report"' in detail and "1 approved, 0 denied, 0 don't know" in detail
    response = verified_client(auditor).get(reverse("reviews:history_xlsx", args=[definition.pk]))
    assert response.status_code == 200 and response["Content-Type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("Run", "Run started (UTC)", "Run ended (UTC)", "Run status")
    assert [row[0] for row in rows[1:]] == [1, 2]
    assert isinstance(rows[1][1], datetime) and rows[1][1] == old.starts_at.replace(tzinfo=None)
    assert (
        rows[1][rows[0].index("Decision")] == "Not decided"
        and rows[2][rows[0].index("Decision")] == "Approve"
    )
    assert AuditEvent.objects.get(action="review.history_exported").details["format"] == "xlsx"
    csv = b"".join(
        verified_client(auditor).get(reverse("reviews:history_csv", args=[definition.pk])).streaming_content
    )
    assert csv.decode().count("\n") == 3


def test_the_history_report_is_refused_to_people_who_may_not_see_reports(run, reviewer, outsider):
    for person in (reviewer, outsider):
        url = reverse("reviews:history_csv", args=[run.definition_id])
        assert signed_in(person).get(url).status_code == 404
    assert not AuditEvent.objects.filter(action="review.history_exported").exists()
