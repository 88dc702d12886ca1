"""The bounded mixed load of bench/load.py, shortened: no server error, no "database is
locked", every acknowledged write found again, every job finished."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, skip_or_fail_without_postgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SECONDS = os.environ.get("GRADECAST_LOAD_SECONDS", "15")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_mixed_load(backend: str) -> None:
    if backend == "postgres":
        skip_or_fail_without_postgres()
    result = subprocess.run(
        [sys.executable, "bench/load.py", "--backend", backend, "--seconds", SECONDS],
        cwd=ROOT,
        env={**os.environ, "GRADECAST_BENCH_POSTGRES_URL": POSTGRES_URL},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(result.stdout)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["server_errors"] == 0, result.stdout
    assert summary["database_locked"] == 0
    assert summary["missing_writes"] == 0
    assert summary["jobs_unfinished"] == 0
    assert summary["jobs_failed"] == 0
    assert summary["activation_history_consistent"] == 1
    assert summary["cohorts_created"] > 0
    assert summary["jobs_created"] > 0
    assert result.returncode == 0
