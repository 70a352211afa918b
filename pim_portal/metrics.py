"""Prometheus metrics (/metrics): request metrics, and the domain gauges computed at scrape time.

Request counts and durations are counted in each process. Under gunicorn (several worker
processes per instance) they are kept in prometheus-client's multiprocess mode: gunicorn.conf.py
gives each instance its own PROMETHEUS_MULTIPROC_DIR before it forks, and a scrape of any worker
adds up every worker of that instance. The domain gauges (pending approvals, active privileged
assignments, the outboxes, the periodic jobs, the audit checkpoint) are read from the database
at each scrape, so every instance reports the same values however many processes run.
"""

import os
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from activations.models import ActivationRequest
from audit.models import AuditCheckpoint
from roles.models import ActiveAssignment

from .models import PeriodicJobStatus
from .outboxes import OUTBOXES

REQUESTS = Counter(
    "pim_http_requests",
    "HTTP requests answered, by method, URL pattern name and status code.",
    ["method", "view", "status"],
)
REQUEST_SECONDS = Histogram(
    "pim_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL pattern name.",
    ["method", "view"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def request_observe(*, method: str, view: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, view, str(status)).inc()
    REQUEST_SECONDS.labels(method, view).observe(seconds)


class DomainCollector(Collector):
    """The gauges read from the database at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = timezone.now()
        yield GaugeMetricFamily(
            "pim_pending_approvals",
            "Activation requests waiting for an approver's decision.",
            value=ActivationRequest.objects.filter(status=ActivationRequest.Status.PENDING_APPROVAL).count(),
        )
        yield GaugeMetricFamily(
            "pim_active_privileged_assignments",
            "Active assignments of privileged roles in force now.",
            value=ActiveAssignment.objects.current(now).filter(role__privileged=True).count(),
        )
        depth = GaugeMetricFamily("pim_outbox_depth", "Rows waiting in each outbox.", labels=["outbox"])
        age = GaugeMetricFamily(
            "pim_outbox_oldest_age_seconds",
            "How long the oldest pending row of each outbox has waited (0 when none waits).",
            labels=["outbox"],
        )
        for outbox in OUTBOXES:
            count, oldest = outbox.backlog()
            depth.add_metric([outbox.name], count)
            age.add_metric([outbox.name], 0.0 if oldest is None else (now - oldest).total_seconds())
        yield depth
        yield age
        duration = GaugeMetricFamily(
            "pim_periodic_job_last_duration_seconds",
            "How long the last run of each job took.",
            labels=["job"],
        )
        success = GaugeMetricFamily(
            "pim_periodic_job_last_success_timestamp_seconds",
            "When each job last finished without error (Unix time).",
            labels=["job"],
        )
        runs = CounterMetricFamily("pim_periodic_job_runs", "Runs of each job.", labels=["job"])
        failures = CounterMetricFamily(
            "pim_periodic_job_failures", "Failed runs of each job.", labels=["job"]
        )
        for status in PeriodicJobStatus.objects.order_by("name"):
            if status.last_duration_seconds is not None:
                duration.add_metric([status.name], status.last_duration_seconds)
            if status.last_success_at is not None:
                success.add_metric([status.name], status.last_success_at.timestamp())
            runs.add_metric([status.name], status.runs)
            failures.add_metric([status.name], status.failures)
        yield from (duration, success, runs, failures)
        newest = AuditCheckpoint.objects.order_by("-created_at").values_list("created_at", flat=True).first()
        if newest is not None:
            yield GaugeMetricFamily(
                "pim_audit_checkpoint_age_seconds",
                "Time since the newest signed audit checkpoint.",
                value=(now - newest).total_seconds(),
            )


def metrics_render() -> bytes:
    """The exposition text: this instance's request metrics, then the domain gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    domain = CollectorRegistry(auto_describe=False)
    domain.register(DomainCollector())
    return generate_latest(registry) + generate_latest(domain)
