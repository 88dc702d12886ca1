"""Workers as real processes: SIGKILL mid-job, SIGTERM, two workers racing over a queue."""

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.db.models import Role
from tests import processes
from tests.conftest import LiveServer, make_settings, make_tenant, start_server
from tests.processes import private_database
from tests.test_evaluations import school_year, upload
from tests.test_jobs import FINISHED, LONG_SGD, submit, upload_example, upload_synthetic, wait_for
from tests.test_models import version_body

LEASE_SECONDS = 2.0


@pytest.fixture(scope="module")
def api_only(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The HTTP API with no in-process worker: jobs are run by the worker processes below."""
    data_dir = tmp_path_factory.mktemp("api")
    settings = make_settings(
        private_database(database_url, data_dir, "gradecast_worker_tests"),
        data_dir,
        workers=0,
        job_lease_seconds=LEASE_SECONDS,
    )
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


def start_worker(server: LiveServer) -> subprocess.Popen[bytes]:
    return processes.start_worker(
        server.settings.resolved_database_url, GRADECAST_JOB_LEASE_SECONDS=str(LEASE_SECONDS)
    )


def versions_per_job(server: LiveServer) -> dict[str, int]:
    with server.database.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT job_id, count(*) FROM model_versions"
                " WHERE job_id IS NOT NULL GROUP BY job_id"
            )
        ).all()
    return {str(uuid.UUID(str(job_id))): count for job_id, count in rows}


def test_killed_worker_job_is_rerun_by_another_with_one_version(api_only: LiveServer) -> None:
    tenant = make_tenant(api_only)
    with tenant.client(Role.trainer) as client:
        cohort = upload_synthetic(client, 20_000)
        job = submit(
            client,
            cohort_id=cohort["id"],
            model="crash",
            **LONG_SGD,
        )
        first = start_worker(api_only)
        try:
            running = wait_for(client, job["id"], {"running", *FINISHED}, timeout=30)
            assert running["status"] == "running"
            deadline = time.monotonic() + 20
            while client.get(f"/jobs/{job['id']}").json()["progress"]["steps_done"] == 0:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            processes.stop_process(first)
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "running"

        second = start_worker(api_only)
        try:
            done = wait_for(client, job["id"], timeout=120)
        finally:
            processes.stop_process(second)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2, done
        assert versions_per_job(api_only).get(job["id"]) == 1
        loss = client.get(f"/jobs/{job['id']}/loss").json()
        steps = [p["step"] for p in loss["points"]]
        assert steps == sorted(set(steps)), "the re-run must not mix in the killed run's history"


def test_sigterm_releases_the_job_for_another_worker(api_only: LiveServer) -> None:
    tenant = make_tenant(api_only)
    with tenant.client(Role.trainer) as client:
        cohort = upload_synthetic(client, 20_000, name="term")
        job = submit(
            client,
            cohort_id=cohort["id"],
            model="term",
            **LONG_SGD,
        )
        first = start_worker(api_only)
        try:
            assert (
                wait_for(client, job["id"], {"running", *FINISHED}, timeout=30)["status"]
                == "running"
            )
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=15) == 0
        finally:
            processes.stop_process(first)
        released = client.get(f"/jobs/{job['id']}").json()
        assert released["status"] == "queued", released
        second = start_worker(api_only)
        try:
            done = wait_for(client, job["id"], timeout=120)
        finally:
            processes.stop_process(second)
        assert done["status"] == "succeeded"
        assert versions_per_job(api_only).get(job["id"]) == 1


def test_two_workers_race_over_fifty_jobs(api_only: LiveServer) -> None:
    tenant = make_tenant(api_only)
    with tenant.client(Role.trainer) as client:
        cohort = upload_example(client)
        jobs = [
            submit(
                client,
                cohort_id=cohort["id"],
                model="race",
                algorithm="gd",
                iterations=200,
                learning_rate=0.001,
                activate="never",
            )
            for _ in range(50)
        ]
        workers = [start_worker(api_only), start_worker(api_only)]
        try:
            finished = [wait_for(client, job["id"], timeout=120) for job in jobs]
        finally:
            for worker in workers:
                processes.stop_process(worker)
        assert {job["status"] for job in finished} == {"succeeded"}
        assert all(job["attempts"] == 1 for job in finished)
        assert sorted(job["model_version"] for job in finished) == list(range(1, 51))
        counts = versions_per_job(api_only)
        assert all(counts.get(job["id"]) == 1 for job in jobs)
        assert client.get("/models/race").json()["latest_version"] == 50


def test_worker_survives_a_bad_job(api_only: LiveServer) -> None:
    """A failing job does not take its worker down: the next job still runs."""
    tenant = make_tenant(api_only)
    with tenant.client(Role.trainer) as client:
        cohort = upload_example(client)
        bad = submit(client, cohort_id=cohort["id"], model="w", algorithm="gd", learning_rate=5.0)
        good = submit(client, cohort_id=cohort["id"], model="w", algorithm="closed_form")
        worker = start_worker(api_only)
        try:
            assert wait_for(client, bad["id"])["status"] == "failed"
            assert wait_for(client, good["id"])["status"] == "succeeded"
        finally:
            processes.stop_process(worker)
        assert worker.returncode == 0


def test_a_wait_sees_a_job_that_a_worker_process_ran(api_only: LiveServer) -> None:
    """The API's process runs no worker, so nothing in it signals the job's end: the waiting
    request reads the job again until the worker process has finished it."""
    tenant = make_tenant(api_only)
    with tenant.client(Role.trainer) as client:
        cohort = upload_example(client)
        job = submit(client, cohort_id=cohort["id"], model="waited", algorithm="closed_form")
        worker = start_worker(api_only)
        try:
            answer = client.get(f"/jobs/{job['id']}", params={"wait": 30})
        finally:
            processes.stop_process(worker)
        assert answer.status_code == 200
        assert answer.json()["status"] == "succeeded"
        assert answer.json()["model_version"] == 1


def test_cancel_a_queued_job(api_only: LiveServer) -> None:
    """No worker runs here, so the job stays queued until it is cancelled: at once."""
    tenant = make_tenant(api_only)
    with tenant.client(Role.trainer) as client:
        cohort = upload_example(client)
        job = submit(client, cohort_id=cohort["id"], model="queued", algorithm="closed_form")
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "queued"
        cancelled = client.post(f"/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["finished_at"] is not None
        worker = start_worker(api_only)
        try:
            time.sleep(1.0)  # a worker that starts now must not pick it up
        finally:
            processes.stop_process(worker)
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert client.get("/models/queued").status_code == 404


def test_an_evaluation_job_killed_mid_run_is_run_again_into_one_evaluation(
    database_url: str, tmp_path: Path
) -> None:
    """An evaluation job (a cohort above the synchronous limit) whose worker process is
    SIGKILLed while it computes: the next worker process takes it over once its lease has
    run out, and the version has exactly one evaluation on that cohort, the job's."""
    settings = make_settings(
        private_database(database_url, tmp_path, "gradecast_evaluation_kill"),
        tmp_path,
        workers=0,
        job_lease_seconds=LEASE_SECONDS,
        sync_evaluation_limit=1_000,
    )
    server = start_server(settings)
    try:
        with make_tenant(server).client(Role.trainer) as client:
            X, y = school_year(3, 300_000)
            cohort = upload(client, "promo 2020-2021", X, y)
            assert client.post("/models/concours/versions", json=version_body()).is_success
            queued = client.post(
                "/models/concours/versions/1/evaluations", json={"cohort_id": cohort["id"]}
            )
            assert queued.status_code == 202, queued.text
            job = queued.json()
            first = start_worker(server)
            try:
                # Polled without a pause: the computation takes about 0.15 s here.
                deadline = time.monotonic() + 30
                while (running := client.get(f"/jobs/{job['id']}").json())["status"] == "queued":
                    assert time.monotonic() < deadline, running
                first.send_signal(signal.SIGKILL)
                first.wait()
            finally:
                processes.stop_process(first)
            killed = client.get(f"/jobs/{job['id']}").json()
            assert running["status"] == killed["status"] == "running", (running, killed)

            second = start_worker(server)
            try:
                done = wait_for(client, job["id"], timeout=60)
            finally:
                processes.stop_process(second)
            assert done["status"] == "succeeded", done
            assert done["attempts"] == 2, done
            evaluations = client.get("/models/concours/versions/1/evaluations").json()
            assert evaluations["count"] == 1, evaluations
            assert evaluations["data"][0]["id"] == done["evaluation_id"]
            assert evaluations["data"][0]["n"] == 300_000
    finally:
        server.stop()
        server.database.engine.dispose()
