"""A server process that gets SIGTERM drains first: it keeps answering, each answer closing
its connection, and /readyz says 503; then it stops by itself."""

import signal
import time
from pathlib import Path

import httpx

from tests.processes import ServerProcess, private_database

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
