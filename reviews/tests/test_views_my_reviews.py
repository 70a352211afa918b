"""My reviews: a reviewer's items, one by one or in bulk; only their own; CSRF; escaping;
a fixed number of queries."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.models import ReviewItem
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

from .helpers import ESCAPED_XSS, XSS, definition_create, messages_of, page, signed_in, start

pytestmark = pytest.mark.django_db

MY_REVIEWS = reverse("reviews:my_reviews")
BULK = reverse("reviews:items_decide")


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def reports_of(manager, role, count: int, prefix: str = "report") -> list:
    users = [UserFactory(username=f"{prefix}{n}", manager=manager) for n in range(count)]
    for user in users:
        EligibleAssignmentFactory(user=user, role=role, ends_at=timezone.now() + timedelta(days=200))
    return users


@pytest.fixture
def run(role, reviewer, outsider):
    """Two reports of the reviewer and one of the outsider, under review."""
    reports_of(reviewer, role, 2)
    reports_of(outsider, role, 1, prefix="theirs")
    return start(definition_create(roles=[role], name="Payroll quarterly", justification_required=True))


def item_of(run, username) -> ReviewItem:
    return run.items.get(user__username=username)


def decide(client, item, decision="approve", justification="Still runs payroll", **extra):
    url = reverse("reviews:item_decide", args=[item.pk])
    return client.post(url, {"decision": decision, "justification": justification, **extra})


# --- What the reviewer sees ----------------------------------------------------------------


def test_my_reviews_lists_the_reviewers_items_with_use_recommendation_and_progress(
    run, reviewer, verified_client
):
    html = page(verified_client(reviewer).get(MY_REVIEWS))
    assert "Payroll quarterly" in html
    assert html.count('class="decide-item"') == 2
    assert "Report0 &lt;report0&gt;" in html and "Report1 &lt;report1&gt;" in html
    assert "Payroll Administrator" in html and "<code>/</code>" in html and "Eligible" in html
    assert "Activated: not recently" in html and "Signed in: never" in html
    assert "Has not activated the role in the last 30 days" in html  # the recommendation's reason
    assert f'<progress value="0" max="2" id="progress-{run.pk}"' in html
    assert "0 of 2 decided (0%)" in html


def test_my_reviews_never_shows_other_reviewers_items(run, reviewer, outsider, requester, verified_client):
    html = page(verified_client(reviewer).get(MY_REVIEWS))
    assert "theirs0" not in html and str(item_of(run, "theirs0").pk) not in html
    html = page(signed_in(requester).get(MY_REVIEWS))
    assert "Nothing to review right now." in html and "report0" not in html


def test_my_reviews_filters_by_decision_and_review(run, reviewer, verified_client):
    client = verified_client(reviewer)
    denied, undecided = item_of(run, "report0"), item_of(run, "report1")
    decide(client, denied, "deny", "Moved to sales")
    html = page(client.get(MY_REVIEWS, {"decision": "undecided"}))
    assert f'id="item-{undecided.pk}"' in html and f'id="item-{denied.pk}"' not in html
    html = page(client.get(MY_REVIEWS, {"decision": "deny", "review": str(run.pk)}))
    assert f'id="item-{denied.pk}"' in html and f'id="item-{undecided.pk}"' not in html
    assert page(client.get(MY_REVIEWS, {"decision": "bogus", "review": "not-a-uuid", "page": "x"}))


def test_my_reviews_hides_runs_that_ended(run, reviewer, verified_client):
    with time_machine.travel(run.ends_at + timedelta(minutes=1), tick=False):
        html = page(verified_client(reviewer).get(MY_REVIEWS))
    assert "Nothing to review right now." in html


# --- Deciding ------------------------------------------------------------------------------


def test_a_reviewer_approves_one_item_and_comes_back_to_the_list(run, reviewer, verified_client):
    client = verified_client(reviewer)
    item = item_of(run, "report0")
    response = decide(client, item, "approve", "Runs payroll every month", decision_filter="undecided")
    assert response.status_code == 302
    assert response["Location"] == f"{MY_REVIEWS}?decision=undecided#item-{item.pk}"
    item.refresh_from_db()
    assert (item.decision, item.justification, item.decided_by) == (
        "approve",
        "Runs payroll every month",
        reviewer,
    )
    html = page(client.get(MY_REVIEWS))
    assert "Approved: Report0 &lt;report0&gt;." in html
    assert "1 of 2 decided (50%)" in html and "Runs payroll every month" in html


def test_a_decision_can_be_changed_until_the_run_ends_and_is_refused_after(run, reviewer, verified_client):
    client = verified_client(reviewer)
    item = item_of(run, "report0")
    decide(client, item, "deny", "Left")
    decide(client, item, "approve", "Came back")
    assert ReviewItem.objects.get(pk=item.pk).decision == "approve"
    with time_machine.travel(run.ends_at + timedelta(seconds=1), tick=False):
        late = verified_client(reviewer)
        response = decide(late, item, "deny", "Too late", decision_filter="deny")
        assert response.status_code == 302
        assert "This review has ended; decisions can no longer be changed." in messages_of(
            late.get(response["Location"])
        )
    assert ReviewItem.objects.get(pk=item.pk).decision == "approve"


def test_a_missing_justification_is_refused_with_a_message(run, reviewer, verified_client):
    client = verified_client(reviewer)
    response = decide(client, item_of(run, "report0"), "deny", "   ")
    assert "A justification is required for this review." in messages_of(client.get(response["Location"]))
    assert not ReviewItem.objects.exclude(decision="").exists()


def test_bad_decision_input_is_refused_without_a_500(run, reviewer, verified_client):
    client = verified_client(reviewer)
    item = item_of(run, "report0")
    for data in ({"decision": "maybe"}, {"decision": "approve", "justification": "x" * 3000}, {}):
        response = client.post(reverse("reviews:item_decide", args=[item.pk]), data)
        assert response.status_code == 302
    response = decide(client, item, "approve", "bad\x07bell")
    assert "control characters" in " ".join(messages_of(client.get(response["Location"])))
    assert ReviewItem.objects.get(pk=item.pk).decision == ""


def test_a_reviewer_deciding_someone_elses_item_gets_404_and_nothing_changes(
    run, reviewer, outsider, verified_client
):
    client = verified_client(reviewer)
    theirs = item_of(run, "theirs0")
    assert decide(client, theirs).status_code == 404
    bulk = {
        "items": [str(item_of(run, "report0").pk), str(theirs.pk)],
        "decision": "deny",
        "justification": "x",
    }
    assert client.post(BULK, bulk).status_code == 404
    assert (
        client.post(reverse("reviews:item_decide", args=["00000000-0000-4000-8000-000000000000"])).status_code
        == 404
    )
    assert not ReviewItem.objects.exclude(decision="").exists()


def test_a_selection_is_decided_with_one_post(run, reviewer, verified_client):
    client = verified_client(reviewer)
    mine = [item_of(run, "report0"), item_of(run, "report1")]
    response = client.post(
        BULK, {"items": [str(i.pk) for i in mine], "decision": "deny", "justification": "Team disbanded"}
    )
    assert response.status_code == 302 and response["Location"] == MY_REVIEWS
    assert set(ReviewItem.objects.filter(decision="deny").values_list("pk", flat=True)) == {
        i.pk for i in mine
    }
    assert "Denied: 2 items." in messages_of(client.get(MY_REVIEWS))


def test_an_empty_or_malformed_selection_is_refused_with_a_message(run, reviewer, verified_client):
    client = verified_client(reviewer)
    for data in (
        {"decision": "approve", "justification": "x"},
        {"items": ["not-a-uuid"], "decision": "approve", "justification": "x"},
        {"items": [str(item_of(run, "report0").pk)], "decision": "", "justification": "x"},
    ):
        response = client.post(BULK, data)
        assert response.status_code == 302
        assert messages_of(client.get(MY_REVIEWS))
    assert not ReviewItem.objects.exclude(decision="").exists()


def test_opening_a_decision_url_changes_nothing(run, reviewer, verified_client):
    client = verified_client(reviewer)
    item = item_of(run, "report0")
    for url in (reverse("reviews:item_decide", args=[item.pk]), BULK):
        response = client.get(url, {"decision": "deny", "justification": "x", "items": str(item.pk)})
        assert response.status_code == 302 and response["Location"] == MY_REVIEWS
    assert not ReviewItem.objects.exclude(decision="").exists()


def test_decision_posts_need_the_csrf_token(run, reviewer, verified_client):
    signed_in = verified_client(reviewer)
    client = Client(enforce_csrf_checks=True)
    client.cookies = signed_in.cookies
    item = item_of(run, "report0")
    assert decide(client, item).status_code == 403
    assert (
        client.post(BULK, {"items": [str(item.pk)], "decision": "approve", "justification": "x"}).status_code
        == 403
    )
    assert ReviewItem.objects.get(pk=item.pk).decision == ""

    html = page(client.get(MY_REVIEWS))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert decide(client, item, csrfmiddlewaretoken=token).status_code == 302
    assert ReviewItem.objects.get(pk=item.pk).decision == "approve"


def test_user_text_is_escaped_on_my_reviews(reviewer, verified_client):
    xss_role = RoleFactory(name="Role " + XSS)
    principal = UserFactory(username="xss", display_name=XSS, manager=reviewer)
    EligibleAssignmentFactory(user=principal, role=xss_role)
    run = start(definition_create(roles=[xss_role], name="Review " + XSS))
    client = verified_client(reviewer)
    decide(client, run.items.get(), "deny", XSS)
    html = page(client.get(MY_REVIEWS))
    assert XSS not in html
    assert html.count(ESCAPED_XSS) >= 4  # principal, role, review name, justification


# --- Queries -------------------------------------------------------------------------------


def my_reviews_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(MY_REVIEWS).status_code == 200
    return len(queries.captured_queries)


def test_my_reviews_runs_the_same_number_of_queries_for_3_or_40_items(reviewer, verified_client):
    client = verified_client(reviewer)
    small_role, large_role = RoleFactory(name="Small"), RoleFactory(name="Large")
    reports_of(reviewer, small_role, 3, prefix="s")
    small = start(definition_create(roles=[small_role], name="Small review"))
    decided = small.items.first()
    services.review_item_decide(reviewer=reviewer, item=decided, decision="approve", justification="ok")
    baseline = my_reviews_queries(client)

    reports_of(reviewer, large_role, 37, prefix="l")
    large = start(definition_create(roles=[large_role], name="Large review"))
    services.review_items_decide(
        reviewer=reviewer, items=list(large.items.all()[:20]), decision="deny", justification="no"
    )
    assert ReviewItem.objects.filter(reviewers=reviewer).count() == 40
    assert my_reviews_queries(client) == baseline
