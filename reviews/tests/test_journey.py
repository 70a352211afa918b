"""Issue 4, tried as a new user would: an administrator creates a quarterly review of the
Global Administrators with their managers as reviewers; the managers get emails and decide
(one denies with a reason); at the end the denied eligibility is gone, the audit log says why,
and the auditor downloads the CSV and XLSX showing every decision."""

import csv
import io
from datetime import timedelta

import openpyxl
import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from reviews import services
from reviews.models import ReviewDefinition, ReviewInstance
from roles import services as roles_services
from roles.models import EligibleAssignment
from roles.selectors import eligibilities_for_user
from tests.factories import UserFactory

from .helpers import XSS, global_administrator, messages_of, page, signed_in

pytestmark = pytest.mark.django_db

MY_REVIEWS = reverse("reviews:my_reviews")
REVIEW_NAME = "Global Administrators — quarterly"


def people():
    mona = UserFactory(username="mona", display_name="Mona Manager")
    mike = UserFactory(username="mike", display_name="Mike Manager")
    holders = {
        "alex": UserFactory(username="alex", display_name="Alex Admin", manager=mona),
        "blake": UserFactory(username="blake", display_name="Blake Admin", manager=mona),
        "casey": UserFactory(username="casey", display_name="Casey Admin", manager=mike),
    }
    return mona, mike, holders


def test_a_quarterly_manager_review_of_global_administrators_from_the_form_to_the_reports(
    admin, auditor, django_capture_on_commit_callbacks
):
    ga = global_administrator()
    mona, mike, holders = people()
    for holder in holders.values():
        roles_services.eligible_assign(
            actor=admin,
            role=ga,
            principal=holder,
            ends_at=timezone.now() + timedelta(days=180),
            justification="Tenant administration",
        )

    # The administrator creates the review in the portal.
    admin_client = signed_in(admin)
    response = admin_client.post(
        reverse("reviews:definition_create"),
        {
            "name": REVIEW_NAME,
            "description": "Does each Global Administrator still need the role?",
            "roles": [str(ga.pk)],
            "review_eligible": "on",
            "reviewer_type": "manager",
            "recurrence": "quarterly",
            "start_date": timezone.now().date().isoformat(),
            "duration_days": "14",
            "justification_required": "on",
            "reminders": "on",
            "recommendations": "on",
            "inactivity_days": "30",
            "default_decision": "no_change",
            "auto_apply": "on",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    definition = ReviewDefinition.objects.get(name=REVIEW_NAME)

    # The beat starts the run; each manager gets an email with a link to My reviews.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        [run] = services.review_instances_start_due()
    assert run.definition == definition and run.item_count == 3
    assert sorted(message.to[0] for message in mail.outbox) == [mike.email, mona.email]
    for message in mail.outbox:
        assert REVIEW_NAME in message.subject
        assert f"{settings.PIM_BASE_URL}/reviews/mine/" in message.body
        assert f'href="{settings.PIM_BASE_URL}/reviews/mine/"' in message.alternatives[0][0]

    # Mona reviews her two reports: keeps Alex, denies Blake with a reason.
    mona_client = signed_in(mona)
    html = page(mona_client.get(MY_REVIEWS))
    assert "Alex Admin" in html and "Blake Admin" in html and "Casey Admin" not in html
    assert "Global Administrator" in html and "Has not activated the role in the last 30 days" in html
    items = {item.user.username: item for item in run.items.select_related("user")}
    decide = reverse("reviews:item_decide", args=[items["alex"].pk])
    mona_client.post(decide, {"decision": "approve", "justification": "Runs the tenant"})
    decide = reverse("reviews:item_decide", args=[items["blake"].pk])
    response = mona_client.post(decide, {"decision": "deny", "justification": "Moved to marketing in March"})
    assert "Denied: Blake Admin <blake>." in messages_of(mona_client.get(response["Location"]))
    assert "2 of 2 decided (100%)" in page(mona_client.get(MY_REVIEWS))

    # Mike cannot touch Mona's items; he approves Casey with the selection form.
    mike_client = signed_in(mike)
    assert mike_client.post(decide, {"decision": "approve", "justification": "x"}).status_code == 404
    response = mike_client.post(
        reverse("reviews:items_decide"),
        {"items": [str(items["casey"].pk)], "decision": "approve", "justification": "On call"},
    )
    assert response.status_code == 302

    # The administrator watches the progress.
    html = page(admin_client.get(reverse("reviews:instance_detail", args=[run.pk])))
    assert f'<progress value="3" max="3" id="progress-{run.pk}"' in html

    # At the end the job closes and applies the run: Blake's eligibility is gone.
    mail.outbox.clear()
    with time_machine.travel(run.ends_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert services.review_instances_close_due() == 1
        assert list(eligibilities_for_user(user=holders["blake"])) == []
        assert len(eligibilities_for_user(user=holders["alex"])) == 1
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.APPLIED
    blake_eligibility = EligibleAssignment.objects.get(user=holders["blake"], role=ga)
    assert blake_eligibility.end_reason == "review"
    [removed] = [message for message in mail.outbox if message.to == [holders["blake"].email]]
    assert "removed by an access review" in removed.subject and "Moved to marketing in March" in removed.body

    # The audit log says why.
    removal = AuditEvent.objects.get(
        action="eligible_assignment.removed", target_id=str(blake_eligibility.pk)
    )
    assert removal.actor_label == "system"
    assert removal.details["reason"] == (
        f'Denied in access review "{REVIEW_NAME}" by Mona Manager <mona>: Moved to marketing in March'
    )
    assert removal.details["end_reason"] == "review"
    decided = AuditEvent.objects.filter(action="review.decided").values_list("actor_label", "details")
    assert sorted((actor, d["decision"]) for actor, d in decided) == [
        ("Mike Manager <mike>", "approve"),
        ("Mona Manager <mona>", "approve"),
        ("Mona Manager <mona>", "deny"),
    ]
    assert (
        AuditEvent.objects.filter(action__in=["review.started", "review.closed", "review.applied"]).count()
        == 3
    )

    # The auditor finds the run in the history and downloads both reports.
    auditor_client = signed_in(auditor)
    html = page(auditor_client.get(reverse("reviews:definition_detail", args=[definition.pk])))
    csv_url, xlsx_url = (reverse(f"reviews:report_{f}", args=[run.pk]) for f in ("csv", "xlsx"))
    assert csv_url in html and xlsx_url in html
    content = b"".join(auditor_client.get(csv_url).streaming_content).decode()
    rows = {row["Principal"]: row for row in csv.DictReader(io.StringIO(content, newline=""))}
    expected = {
        "Alex Admin <alex>": ("Approve", "Runs the tenant", "Kept"),
        "Blake Admin <blake>": ("Deny", "Moved to marketing in March", "Removed"),
        "Casey Admin <casey>": ("Approve", "On call", "Kept"),
    }
    assert {p: (r["Decision"], r["Justification"], r["Outcome"]) for p, r in rows.items()} == expected
    assert rows["Blake Admin <blake>"]["Reviewers"] == "Mona Manager <mona>"
    content = b"".join(auditor_client.get(xlsx_url).streaming_content)
    sheet = openpyxl.load_workbook(io.BytesIO(content), read_only=True).active
    header, *values = list(sheet.iter_rows(values_only=True))
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in values}
    assert {p: (r["Decision"], r["Justification"], r["Outcome"]) for p, r in rows.items()} == expected
    assert AuditEvent.objects.filter(action="review.report_exported", actor_id=auditor.pk).count() == 2


def test_html_in_a_justification_is_escaped_in_the_removal_email_both_parts(
    admin, django_capture_on_commit_callbacks
):
    ga = global_administrator()
    mona, _, holders = people()
    roles_services.eligible_assign(
        actor=admin, role=ga, principal=holders["blake"], ends_at=timezone.now() + timedelta(days=90)
    )
    roles_services.eligible_assign(
        actor=admin, role=ga, principal=holders["alex"], ends_at=timezone.now() + timedelta(days=90)
    )
    definition = services.review_definition_create(
        actor=admin, roles=[ga], name=f"Review {XSS}", start_date=timezone.now().date(), description=XSS
    )
    with django_capture_on_commit_callbacks(execute=True):
        [run] = services.review_instances_start_due()
    started = [message for message in mail.outbox if message.to == [mona.email]][0]
    assert XSS not in started.alternatives[0][0] and "&lt;script&gt;" in started.alternatives[0][0]
    item = run.items.get(user=holders["blake"])
    services.review_item_decide(reviewer=mona, item=item, decision="deny", justification=XSS)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.review_instance_end_early(actor=admin, instance=run)
    assert definition.auto_apply
    [removed] = [message for message in mail.outbox if message.to == [holders["blake"].email]]
    html = removed.alternatives[0][0]
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\n" not in removed.subject
