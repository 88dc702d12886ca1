"""What an operator reads when gradecast starts: JSON lines only, and only what they need
(no Alembic plugin list, no dialect notes at every readiness check, no terminal colours)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db.migrations import head_revision
from tests.conftest import free_port
from tests.test_cli import ROOT, gradecast


def records(stderr: str) -> list[dict[str, Any]]:
    """Every line of stderr as a JSON object (a line that is not one fails the test)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_migrate_says_what_it_applied_in_json(tmp_path: Path) -> None:
    env = {
        "GRADECAST_DATABASE_URL": f"sqlite:///{tmp_path}/logs.db",
        "GRADECAST_LOG_LEVEL": "INFO",
    }
    first = records(gradecast("migrate", env=env).stderr)
    assert [r["message"] for r in first] == ["database migrated"]
    assert first[0]["from_revision"] is None
    assert first[0]["to_revision"] == head_revision()
    again = records(gradecast("migrate", env=env).stderr)
    assert [(r["message"], r["revision"]) for r in again] == [
        ("database already at the latest migration", head_revision())
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_and_stops_in_a_few_json_lines(tmp_path: Path, workers: int) -> None:
    """With `--workers 2` too: each spawned process configures its own logs."""
    url = f"sqlite:///{tmp_path}/serve.db"
    env = {
        **os.environ,
        "GRADECAST_DATABASE_URL": url,
        "GRADECAST_DATA_DIR": str(tmp_path),
        "GRADECAST_LOG_LEVEL": "INFO",
        "GRADECAST_BOOTSTRAP_ADMIN_KEY": "gc_startup_logs_test_key_0123456789abcdef",
    }
    gradecast("migrate", env=env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        ready = 0
        while ready < 6:  # a few readiness checks, as an orchestrator makes them
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                ready += httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    # One access line per request is the point of the access log, each written by the
    # time the process has stopped (they are written in batches): count the rest.
    access = [r for r in records(stderr) if r["logger"] == "gradecast.access"]
    assert len([r for r in access if r["route"] == "/readyz" and r["status"] == 200]) == ready
    logged = [r for r in records(stderr) if r["logger"] != "gradecast.access"]
    assert not [r for r in logged if r["logger"].startswith("alembic")], logged
    assert not [r for r in logged if "color_message" in r], logged
    assert {r["level"] for r in logged} == {"INFO"}, logged
    assert any(r["message"].startswith("Uvicorn running on") for r in logged), logged
    assert len(logged) <= 12 * workers + 6, logged  # each process: start, drain, stop; the parent
