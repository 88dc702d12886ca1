"""Metrics of real processes: `--workers 2` adds up both uvicorn processes (prometheus_client's
multiprocess mode), and `gradecast worker` serves its own job metrics on a port."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.db.models import Role
from tests import processes
from tests.conftest import LiveServer, free_port, make_settings, make_tenant, start_server
from tests.processes import ServerProcess, private_database
from tests.test_jobs import LONG_SGD, submit, upload_example, upload_synthetic, wait_for
from tests.test_observability import sample

REQUESTS = 60


def scrape(url: str) -> str:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_two_server_processes_count_every_request(database_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = ServerProcess(
        private_database(database_url, tmp_path, "gradecast_multiprocess"),
        tmp_path,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "GRADECAST_WORKERS": "0"},
        workers=2,
    ).start()
    try:
        # A connection of its own per request, so that both processes answer some.
        for _ in range(REQUESTS):
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        # Each process wrote its own file; any process's scrape adds them all up.
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2
        for _ in range(6):
            text = scrape(server.url)
            counted = sample(
                text,
                "gradecast_http_requests_total",
                method="GET",
                route="/healthz",
                status="200",
            )
            assert counted == REQUESTS
            # Read from the database at scrape time, once, not once per process.
            assert sample(text, "gradecast_jobs", status="queued") == 0
            assert text.count("# TYPE gradecast_jobs gauge") == 1
    finally:
        server.stop()


@pytest.fixture
def api_only(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        private_database(database_url, tmp_path, "gradecast_worker_metrics"), tmp_path, workers=0
    )
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


def wait_for_metrics(url: str, worker: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            return scrape(url)
        except httpx.TransportError:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "no metrics from the worker"
            time.sleep(0.1)


def test_standalone_worker_serves_its_job_metrics(api_only: LiveServer) -> None:
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}"
    worker = processes.start_worker(
        api_only.settings.resolved_database_url, GRADECAST_METRICS_PORT=str(port)
    )
    try:
        assert sample(wait_for_metrics(metrics_url, worker), "gradecast_job_outcomes_total") == 0
        with make_tenant(api_only).client(Role.trainer) as client:
            short = submit(client, cohort_id=upload_example(client)["id"], algorithm="closed_form")
            assert wait_for(client, short["id"])["status"] == "succeeded"
            # A job's progress reaches the API only through a heartbeat, which renews the
            # lease: once some progress shows, a renewal has been counted. Then cancel it.
            cohort = upload_synthetic(client, 20_000)
            long = submit(client, cohort_id=cohort["id"], **LONG_SGD)
            deadline = time.monotonic() + 120
            while client.get(f"/jobs/{long['id']}").json()["progress"]["steps_done"] == 0:
                assert time.monotonic() < deadline, "no heartbeat from the worker"
                time.sleep(0.05)
            assert client.post(f"/jobs/{long['id']}/cancel").status_code == 200
            assert wait_for(client, long["id"], timeout=120)["status"] == "cancelled"
        text = scrape(metrics_url)
        assert sample(text, "gradecast_job_outcomes_total", outcome="succeeded") == 1
        assert sample(text, "gradecast_job_outcomes_total", outcome="cancelled") == 1
        assert sample(text, "gradecast_job_duration_seconds_count", outcome="succeeded") == 1
        assert sample(text, "gradecast_job_duration_seconds_count", outcome="cancelled") == 1
        assert sample(text, "gradecast_job_lease_renewals_total") >= 1
    finally:
        processes.stop_process(worker)
