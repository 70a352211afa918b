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

# Chart sizes in SVG user units (the picture scales to its column). Narrow enough that the
# labels stay readable when a phone shrinks the picture to about 360 px.
WIDTH = 480
COLUMN_HEIGHT = 190
PLOT_TOP = 10  # room for the top tick's label
AXIS_BOTTOM = 24  # the day labels under the columns
AXIS_LEFT = 36  # the scale's labels left of the columns
ROW_HEIGHT = 24
LABEL_WIDTH = 170
VALUE_WIDTH = 44
SCALE_HEIGHT = 22  # the scale under the rows
FONT = 13


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
    anchor: str = "middle"  # of the label under a column: the first starts, the last ends there

    @property
    def text_y(self) -> float:
        """The baseline of the row's label and value text."""
        return round(self.y + 13, 1)

    @property
    def label_x(self) -> float:
        """Where the label under a column is anchored."""
        if self.anchor == "start":
            return self.x
        if self.anchor == "end":
            return round(self.x + self.width, 1)
        return round(self.x + self.width / 2, 1)


@dataclass
class Tick:
    """A mark of the scale: its value as written, and where it is (x for rows, y for columns)."""

    label: str
    at: float


@dataclass
class Chart:
    title: str
    kind: str  # "columns" (one per day) or "rows" (one per category)
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    total: int = 0
    oldest: datetime | None = None
    ticks: list[Tick] = field(default_factory=list)
    plot_left: float = 0
    plot_right: float = 0
    plot_top: float = 0
    plot_bottom: float = 0

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def nice_scale(top: int, *, most: int = 5) -> tuple[int, list[int]]:
    """A scale from 0 to at least top in round steps (1, 2 or 5 times a power of ten), at
    most `most` steps: (the scale's end, its tick values)."""
    top = max(top, 1)
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if -(-top // step) <= most:
                end = -(-top // step) * step
                return end, list(range(0, end + 1, step))
        magnitude *= 10


def columns(title: str, points: list[tuple[str, int]], *, every: int = 7) -> Chart:
    """Vertical bars left to right (a time series) over a scale; every n-th day and the last
    are labelled, the last one ending at the right edge so it is never cut."""
    end, ticks = nice_scale(max((value for _, value in points), default=0))
    plot_bottom = COLUMN_HEIGHT - AXIS_BOTTOM
    plot = plot_bottom - PLOT_TOP
    slot = (WIDTH - AXIS_LEFT) / max(len(points), 1)
    last = len(points) - 1
    bars = []
    for index, (label, value) in enumerate(points):
        height = round(plot * value / end, 1)
        labelled = index == last or (index % every == 0 and last - index >= every // 2)
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(AXIS_LEFT + index * slot + 1, 1),
                y=round(plot_bottom - height, 1),
                width=round(slot - 2, 1),
                height=height,
                caption=str(value),
                show_label=labelled,
                anchor="end" if index == last else "start" if index == 0 else "middle",
            )
        )
    chart = Chart(title, "columns", WIDTH, COLUMN_HEIGHT, bars, sum(v for _, v in points))
    chart.ticks = [Tick(str(value), round(plot_bottom - plot * value / end, 1)) for value in ticks]
    chart.plot_left, chart.plot_right = AXIS_LEFT, WIDTH
    chart.plot_top, chart.plot_bottom = PLOT_TOP, plot_bottom
    return chart


def rows(
    title: str,
    points: list[tuple[str, int, str]],
    *,
    top: int | None = None,
    fills: dict | None = None,
    unit: str = "",
) -> Chart:
    """Horizontal bars, one per category: (label, value, caption), over a scale."""
    end, ticks = (
        (top, [0, top // 4, top // 2, 3 * top // 4, top])
        if top
        else nice_scale(max((value for _, value, _ in points), default=0))
    )
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = [
        Bar(
            label=label,
            value=value,
            x=LABEL_WIDTH,
            y=index * ROW_HEIGHT + 3,
            width=round(span * value / end, 1),
            height=ROW_HEIGHT - 6,
            fill=(fills or {}).get(label, FILL),
            caption=caption,
        )
        for index, (label, value, caption) in enumerate(points)
    ]
    plot_bottom = max(len(points), 1) * ROW_HEIGHT
    chart = Chart(title, "rows", WIDTH, plot_bottom + SCALE_HEIGHT, bars, sum(p[1] for p in points))
    chart.ticks = [Tick(f"{value}{unit}", round(LABEL_WIDTH + span * value / end, 1)) for value in ticks]
    chart.plot_left, chart.plot_right = LABEL_WIDTH, LABEL_WIDTH + span
    chart.plot_top, chart.plot_bottom = 0, plot_bottom
    return chart


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
    return rows("Access reviews in progress (decided / total)", points, top=100, unit="%")


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
