"""Prometheus metrics of one service instance, in a registry of its own.

Each app (and each standalone worker) owns a ``CollectorRegistry``, never the global
default one, so that several apps in one process (the tests) do not collide. Labels are
route templates, statuses, model names and versions: never a pupil, a grade or a key.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``gradecast serve --workers N``), prometheus_client
keeps every process's values in files there, and a scrape of any process adds up all of
them (prometheus_client's multiprocess mode; ``gradecast serve`` empties the folder first).
"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from app.db.models import JobStatus

logger = logging.getLogger("gradecast.metrics")

# /predict answers in about a millisecond; training jobs take from a second to an hour.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class JobMetrics:
    """What a worker observes when a job ends: its duration and its outcome."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "gradecast_job_duration_seconds",
            "Time a worker spent on a training job, from claim to end, by outcome.",
            ["outcome"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.outcomes = Counter(
            "gradecast_job_outcomes",
            "Training job runs ended by this process, by outcome (succeeded, failed, "
            "cancelled, released, lease_lost).",
            ["outcome"],
            registry=registry,
        )
        self.lease_renewals = Counter(
            "gradecast_job_lease_renewals",
            "Heartbeats that renewed the lease of a running job.",
            registry=registry,
        )

    def job_ended(self, outcome: str, started: float) -> None:
        """``started`` is a ``time.monotonic()`` reading taken when the job was claimed."""
        self.duration.labels(outcome).observe(time.monotonic() - started)
        self.outcomes.labels(outcome).inc()


class DeliveryMetrics:
    """What a worker observes of webhook delivery attempts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "gradecast_webhook_delivery_attempts",
            "Webhook delivery attempts by result (succeeded, retrying, failed: given up, "
            "lost: the delivery was deleted or taken over meanwhile).",
            ["result"],
            registry=registry,
        )
        self.duration = Histogram(
            "gradecast_webhook_delivery_duration_seconds",
            "Time of one webhook delivery attempt, from signing to recording its result.",
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

    def attempted(self, result: str, seconds: float) -> None:
        self.attempts.labels(result).inc()
        self.duration.observe(seconds)


JobCounts = Callable[[], Mapping[JobStatus, int]]


class JobsCollector(Collector):
    """Jobs by status across all organisations, counted (by the database) at scrape time."""

    def __init__(self, count_jobs: JobCounts) -> None:
        self.count_jobs = count_jobs

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self.count_jobs()
        except SQLAlchemyError as exc:
            logger.warning("jobs metrics unavailable", extra={"error": type(exc).__name__})
            return []
        return self._families(counts)

    @staticmethod
    def _families(counts: Mapping[JobStatus, int]) -> list[Metric]:
        by_status = GaugeMetricFamily(
            "gradecast_jobs", "Training jobs by status, all organisations.", labels=["status"]
        )
        for status in JobStatus:
            by_status.add_metric([status.value], counts.get(status, 0))
        queue = GaugeMetricFamily(
            "gradecast_job_queue_depth",
            "Training jobs waiting for a worker.",
            value=counts.get(JobStatus.queued, 0),
        )
        return [by_status, queue]


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode, when it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def serve_registry(registry: CollectorRegistry, port: int) -> Callable[[], None]:
    """Serve ``registry`` on ``port`` (all interfaces) with prometheus_client's own HTTP
    server, in a thread of its own; returns the function that stops it."""
    server, thread = start_http_server(port, registry=registry)
    logger.info("metrics served on their own port", extra={"port": port})

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


class ServiceMetrics:
    """The registry of one app and the metrics its requests and workers move."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gradecast_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gradecast_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "gradecast_predictions",
            "Pupils predicted, by model name and version.",
            ["model", "version"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "gradecast_predictions_skipped",
            "Pupils of /predict requests with on_error=skip that got no prediction (a special "
            "mark, a value that is not a grade), by model name and version.",
            ["model", "version"],
            registry=self.registry,
        )
        self.jobs = JobMetrics(self.registry)
        self.deliveries = DeliveryMetrics(self.registry)
        # What a scrape reads: this registry, or every process's values in multiprocess mode.
        self.exposed = self.registry
        directory = multiprocess_dir()
        if directory is not None:
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, path=directory)  # type: ignore[no-untyped-call]
        # Children by label values: a dict lookup is cheaper than ``labels()`` on every request.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._prediction_children: dict[tuple[str, int], tuple[Counter, Counter]] = {}

    def watch_jobs(self, count_jobs: JobCounts) -> None:
        self.exposed.register(JobsCollector(count_jobs))

    def serve(self, port: int) -> Callable[[], None]:
        return serve_registry(self.exposed, port)

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def predicted(self, model: str, version: int, pupils: int, skipped: int = 0) -> None:
        key = (model, version)
        children = self._prediction_children.get(key)
        if children is None:
            if len(self._prediction_children) > 10_000:  # bounded, as model names are not
                self._prediction_children.clear()
            labels = (model, str(version))
            children = (self.predictions.labels(*labels), self.skipped.labels(*labels))
            self._prediction_children[key] = children
        children[0].inc(pupils - skipped)
        if skipped:
            children[1].inc(skipped)
