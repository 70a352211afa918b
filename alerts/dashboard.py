"""The dashboard's numbers and its bar charts' geometry.

Every figure is one aggregate query (six in all, whatever the size of the data); the charts are
laid out here and drawn by the template as plain SVG <rect> elements: no script, no inline
style (the CSP forbids it), nothing from a CDN.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from activations.models import ActivationRequest
from reviews.models import ReviewInstance
from roles.models import ActiveAssignment

from .models import Alert

DAYS = 30
TOP = 8
SEVERITY_FILL = {"high": "#b71c1c", "medium": "#e65100", "low": "#607d8b"}
FILL = "#1565c0"

# Chart sizes in SVG user units (the picture scales to its column).
WIDTH = 600
COLUMN_HEIGHT = 150
ROW_HEIGHT = 22
LABEL_WIDTH = 230
VALUE_WIDTH = 60


@dataclass
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    fill: str = FILL
    caption: str = ""  # the value as written next to the bar
    show_label: bool = True

    @property
    def text_y(self) -> float:
        """The baseline of the row's label and value text."""
        return round(self.y + 13, 1)


@dataclass
class Chart:
    title: str
    kind: str  # "columns" (one per day) or "rows" (one per category)
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    total: int = 0
    oldest: datetime | None = None

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def columns(title: str, points: list[tuple[str, int]], *, every: int = 5) -> Chart:
    """Vertical bars left to right (a time series); every n-th one is labelled."""
    top = max((value for _, value in points), default=0) or 1
    slot = WIDTH / max(len(points), 1)
    plot = COLUMN_HEIGHT - 20  # room for the labels under the bars
    bars = []
    for index, (label, value) in enumerate(points):
        height = round(plot * value / top, 1)
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(index * slot + 1, 1),
                y=round(plot - height, 1),
                width=round(slot - 2, 1),
                height=height,
                caption=str(value),
                show_label=index % every == 0 or index == len(points) - 1,
            )
        )
    return Chart(title, "columns", WIDTH, COLUMN_HEIGHT, bars, sum(v for _, v in points))


def rows(
    title: str, points: list[tuple[str, int, str]], *, top: int | None = None, fills: dict | None = None
) -> Chart:
    """Horizontal bars, one per category: (label, value, caption)."""
    top = top or max((value for _, value, _ in points), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = [
        Bar(
            label=label,
            value=value,
            x=LABEL_WIDTH,
            y=index * ROW_HEIGHT + 3,
            width=round(span * value / top, 1),
            height=ROW_HEIGHT - 6,
            fill=(fills or {}).get(label, FILL),
            caption=caption,
        )
        for index, (label, value, caption) in enumerate(points)
    ]
    return Chart(title, "rows", WIDTH, max(len(points), 1) * ROW_HEIGHT, bars, sum(p[1] for p in points))


def dashboard_data(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    return {
        "now": now,
        "activations": activations_per_day(now=now),
        "top_roles": top_activated_roles(now=now),
        "pending": pending_approvals(now=now),
        "reviews": review_progress(),
        "alerts": open_alerts_by_severity(),
        "standing": standing_assignments(now=now),
    }


def _window_start(now: datetime) -> datetime:
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DAYS - 1)


def _granted_since(start: datetime):
    return ActivationRequest.objects.filter(
        kind=ActivationRequest.Kind.ACTIVATE, granted_at__isnull=False, granted_at__gte=start
    )


def activations_per_day(*, now: datetime) -> Chart:
    start = _window_start(now)
    counts = {
        row["day"]: row["count"]
        for row in _granted_since(start)
        .annotate(day=TruncDate("granted_at", tzinfo=UTC))
        .values("day")
        .annotate(count=Count("pk"))
        .order_by()
    }
    days = [(start + timedelta(days=offset)).date() for offset in range(DAYS)]
    return columns(
        f"Activations per day, last {DAYS} days (UTC)", [(f"{day:%m-%d}", counts.get(day, 0)) for day in days]
    )


def top_activated_roles(*, now: datetime) -> Chart:
    top = (
        _granted_since(_window_start(now))
        .values("role__name")
        .annotate(count=Count("pk"))
        .order_by("-count", "role__name")[:TOP]
    )
    return rows(
        f"Most activated roles, last {DAYS} days",
        [(row["role__name"], row["count"], str(row["count"])) for row in top],
    )


PENDING_BUCKETS = (
    ("Under 1 hour", timedelta(0), timedelta(hours=1)),
    ("1–4 hours", timedelta(hours=1), timedelta(hours=4)),
    ("4–24 hours", timedelta(hours=4), timedelta(hours=24)),
    ("Over a day", timedelta(hours=24), None),
)


def pending_approvals(*, now: datetime) -> Chart:
    """Requests waiting for approval, by how long they have waited."""

    def waited(low, high) -> Q:
        q = Q(created_at__lte=now - low)
        return q & Q(created_at__gt=now - high) if high is not None else q

    aggregates = {
        f"b{index}": Count("pk", filter=waited(low, high))
        for index, (_, low, high) in enumerate(PENDING_BUCKETS)
    }
    counts = ActivationRequest.objects.filter(status=ActivationRequest.Status.PENDING_APPROVAL).aggregate(
        oldest=Min("created_at"), total=Count("pk"), **aggregates
    )
    chart = rows(
        "Pending approvals by age",
        [
            (label, counts[f"b{index}"], str(counts[f"b{index}"]))
            for index, (label, _, _) in enumerate(PENDING_BUCKETS)
        ],
    )
    chart.total = counts["total"]
    chart.oldest = counts["oldest"]
    return chart


def review_progress() -> Chart:
    """Running access reviews: how many of their items are decided (bars in per cent)."""
    instances = (
        ReviewInstance.objects.filter(status=ReviewInstance.Status.ACTIVE)
        .annotate(total=Count("items"), decided=Count("items", filter=~Q(items__decision="")))
        .values("definition__name", "starts_at", "total", "decided")
        .order_by("ends_at")[:TOP]
    )
    points = [
        (
            f"{row['definition__name']} ({row['starts_at']:%Y-%m-%d})",
            round(100 * row["decided"] / row["total"]) if row["total"] else 0,
            f"{row['decided']}/{row['total']}",
        )
        for row in instances
    ]
    return rows("Access reviews in progress (decided / total)", points, top=100)


def open_alerts_by_severity() -> Chart:
    counts = dict(
        Alert.objects.filter(status=Alert.Status.OPEN)
        .values("severity")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("severity", "count")
    )
    return rows(
        "Open alerts by severity",
        [
            (label.capitalize(), counts.get(label, 0), str(counts.get(label, 0)))
            for label in Alert.Severity.values
        ],
        fills={label.capitalize(): fill for label, fill in SEVERITY_FILL.items()},
    )


def standing_assignments(*, now: datetime) -> Chart:
    """Permanent active assignments of privileged roles (standing access), per role."""
    per_role = (
        ActiveAssignment.objects.filter(
            role__privileged=True, ends_at__isnull=True, ended_at__isnull=True, starts_at__lte=now
        )
        .values("role__name")
        .annotate(count=Count("pk"))
        .order_by("-count", "role__name")
    )
    points = [(row["role__name"], row["count"], str(row["count"])) for row in per_role]
    chart = rows("Standing (permanent active) privileged assignments", points[:TOP])
    chart.total = sum(p[1] for p in points)
    return chart
