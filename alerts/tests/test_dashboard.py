"""The dashboard: who sees it, its SVG bars for known data, and a fixed number of queries."""

import re
from datetime import UTC, timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activations.models import ActivationRequest
from alerts.models import Alert, RuleEvaluation
from reviews.models import ReviewDefinition, ReviewInstance, ReviewItem
from tests.factories import ActiveAssignmentFactory, EligibleAssignmentFactory, RoleFactory

pytestmark = pytest.mark.django_db

BAR = re.compile(r'<rect class="bar"[^>]*data-label="([^"]*)" data-value="(\d+)"')


def bars(page: str, chart_id: str) -> list[tuple[str, int]]:
    svg = page.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
    return [(unescape(label), int(value)) for label, value in BAR.findall(svg)]


def activation(role, *, at, status=ActivationRequest.Status.EXPIRED):
    eligible = EligibleAssignmentFactory(role=role)
    fields = {"granted_at": at} if status != ActivationRequest.Status.PENDING_APPROVAL else {}
    if status == ActivationRequest.Status.PENDING_APPROVAL:
        fields["decide_by"] = at + timedelta(days=1)
    return ActivationRequest.objects.create(
        requester=eligible.user,
        eligible=eligible,
        role=role,
        scope="/",
        status=status,
        duration=timedelta(hours=1),
        created_at=at,
        **fields,
    )


def known_data(now, suffix=""):
    often, seldom = RoleFactory(name=f"Often Role{suffix}"), RoleFactory(name=f"Seldom Role{suffix}")
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for minutes in (5, 10, 15):  # today in UTC, whatever the time of the test
        activation(often, at=today + timedelta(minutes=minutes))
    activation(seldom, at=today - timedelta(days=2) + timedelta(hours=1))
    activation(seldom, at=now - timedelta(hours=2), status=ActivationRequest.Status.PENDING_APPROVAL)
    ActiveAssignmentFactory(ends_at=None, role=RoleFactory(name=f"Standing Role{suffix}"))
    Alert.objects.create(kind=f"x{suffix}", severity="high", first_raised_at=now, last_evaluated_at=now)
    RuleEvaluation.objects.update_or_create(kind=f"x{suffix}", defaults={"evaluated_at": now})
    definition = ReviewDefinition.objects.create(name=f"Quarterly{suffix}", start_date=now.date())
    instance = ReviewInstance.objects.create(
        definition=definition,
        occurrence=0,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=5),
    )
    for decision in ("approve", ""):
        eligible = EligibleAssignmentFactory(role=seldom)
        ReviewItem.objects.create(
            instance=instance,
            assignment_type="eligible",
            eligible=eligible,
            user=eligible.user,
            principal_label=eligible.user.label,
            role=seldom,
            scope="/",
            decision=decision,
        )


def test_outsider_gets_404(verified_client, outsider):
    assert verified_client(outsider).get("/audit/dashboard/").status_code == 404


def test_auditor_sees_the_dashboard(verified_client, auditor):
    assert verified_client(auditor).get("/audit/dashboard/").status_code == 200


def test_dashboard_draws_the_right_bars_for_known_data(verified_client, admin):
    now = timezone.now()
    known_data(now)
    page = verified_client(admin).get("/audit/dashboard/").text
    # No inline style or script (the CSP): only the portal's own script files.
    assert "<svg" in page and "style=" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    per_day = bars(page, "chart-activations")
    assert len(per_day) == 30
    today = now.astimezone(UTC)
    assert per_day[-1] == (f"{today:%m-%d}", 3)
    assert per_day[-3] == (f"{today - timedelta(days=2):%m-%d}", 1)
    assert sum(value for _, value in per_day) == 4
    assert bars(page, "chart-top-roles") == [("Often Role", 3), ("Seldom Role", 1)]
    assert bars(page, "chart-pending") == [
        ("Under 1 hour", 0),
        ("1–4 hours", 1),
        ("4–24 hours", 0),
        ("Over a day", 0),
    ]
    assert bars(page, "chart-reviews") == [(f"Quarterly ({now - timedelta(days=1):%Y-%m-%d})", 50)]
    assert "1/2" in page
    assert bars(page, "chart-alerts") == [("High", 1), ("Medium", 0), ("Low", 0)]
    # the admin's own activation of the PIM Administrator role is time-bound: not standing
    assert bars(page, "chart-standing") == [("Standing Role", 1)]


def test_the_longest_bar_fills_the_plot(verified_client, admin):
    now = timezone.now()
    known_data(now)
    page = verified_client(admin).get("/audit/dashboard/").text
    svg = page.split('id="chart-top-roles"', 1)[1].split("</svg>", 1)[0]
    widths = [float(w) for w in re.findall(r'<rect class="bar"[^>]*width="([\d.]+)"', svg)]
    assert widths[0] == pytest.approx(3 * widths[1], rel=0.01)


def test_dashboard_runs_a_fixed_number_of_queries(verified_client, admin):
    client = verified_client(admin)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/audit/dashboard/").status_code == 200
        return len(queries)

    empty = count()
    known_data(timezone.now())
    known_data(timezone.now() - timedelta(days=3), suffix=" 2")
    assert count() == empty


def svg_of(page: str, chart_id: str) -> str:
    return page.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]


def test_the_charts_have_a_scale_and_labels_that_fit(verified_client, admin):
    now = timezone.now()
    known_data(now)
    page = verified_client(admin).get("/audit/dashboard/").text
    columns = svg_of(page, "chart-activations")
    assert re.findall(r'<text class="tick"[^>]*>(\d+)</text>', columns) == ["0", "1", "2", "3"]
    assert columns.count('class="gridline"') == 4
    labels = re.findall(
        r'<text class="axis-label" x="([\d.]+)"[^>]*text-anchor="(\w+)"[^>]*>([^<]+)</text>', columns
    )
    assert labels[0][1] == "start" and labels[-1][1] == "end"  # neither end is cut
    assert labels[-1][2] == f"{now.astimezone(UTC):%m-%d}" and float(labels[-1][0]) <= 480
    assert float(labels[0][0]) >= 36  # right of the scale's labels
    assert len(labels) == 5  # every 7th day and the last, none crowding the last
    rows = svg_of(page, "chart-reviews")
    assert re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', rows) == ["0%", "25%", "50%", "75%", "100%"]
    top = svg_of(page, "chart-top-roles")
    assert re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', top) == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (0, (1, [0, 1])),
        (3, (3, [0, 1, 2, 3])),
        (7, (8, [0, 2, 4, 6, 8])),
        (42, (50, [0, 10, 20, 30, 40, 50])),
    ],
)
def test_the_scale_ends_on_a_round_number(top, expected):
    from alerts.dashboard import nice_scale

    assert nice_scale(top) == expected
