"""A server process that gets SIGTERM drains first: it keeps answering, each answer closing
its connection, and /readyz says 503; then it stops by itself."""

import secrets
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import ServerProcess, private_database
from tests.test_jobs import submit, upload_example

DRAIN_SECONDS = 3.0


def test_sigterm_drains_before_the_process_stops(database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(
        private_database(database_url, tmp_path, "gradecast_drain"),
        tmp_path,
        env={"GRADECAST_SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS), "GRADECAST_WORKERS": "0"},
    ).start()
    assert server.process is not None
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.headers.get("connection") != "close"
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            deadline = signalled + DRAIN_SECONDS / 2
            while (answer := client.get("/readyz")).status_code == 200:
                assert time.monotonic() < deadline, "still ready after SIGTERM"
            # Still serving, but not ready, and telling the client to go elsewhere next time.
            assert answer.status_code == 503
            assert answer.json()["detail"] == "shutting down"
            assert answer.headers["connection"] == "close"
            healthy = client.get("/healthz")
            assert healthy.status_code == 200
            assert healthy.headers["connection"] == "close"
            assert time.monotonic() - signalled < DRAIN_SECONDS
        # uvicorn ends by re-raising the signal it caught, as a shell expects.
        assert server.process.wait(timeout=DRAIN_SECONDS + 20) in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled >= DRAIN_SECONDS
    finally:
        server.stop()


@pytest.mark.parametrize("drain", ["0", "1"])
def test_sigterm_answers_the_requests_waiting_on_a_job(
    database_url: str, tmp_path: Path, drain: str
) -> None:
    """No worker: the job stays queued. A request waiting 30 s for its end is answered, with
    the job as it is, soon after SIGTERM, and the process stops without waiting it out; with
    no drain too (0 s), where uvicorn's shutdown would otherwise wait for the request."""
    key = "gc_" + secrets.token_urlsafe(32)
    server = ServerProcess(
        private_database(database_url, tmp_path, f"gradecast_wait_{drain}"),
        tmp_path,
        env={
            "GRADECAST_SHUTDOWN_DRAIN_SECONDS": drain,
            "GRADECAST_WORKERS": "0",
            "GRADECAST_BOOTSTRAP_ADMIN_KEY": key,
        },
    ).start()
    assert server.process is not None
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            job = submit(client, cohort_id=upload_example(client)["id"], model="waited")
            answers: list[httpx.Response] = []
            waiter = threading.Thread(
                target=lambda: answers.append(client.get(f"/jobs/{job['id']}", params={"wait": 30}))
            )
            waiter.start()
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            waiter.join(20)
            assert answers, "the wait outlived SIGTERM"
            assert answers[0].status_code == 200
            assert answers[0].json()["status"] == "queued"
        assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled < 15, "the shutdown waited for the wait"
    finally:
        server.stop()
