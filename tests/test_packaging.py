"""The package as a user installs it: sdist and wheel built from the sources, the wheel
installed (with its dependencies) into a fresh venv, then migrating and serving from a
folder that holds nothing of the source tree (no alembic.ini, no alembic/)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.db.migrations import head_revision
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without anything that would point the installed copy back
    at the sources (PYTHONPATH, the dev venv) or at the test suite's GRADECAST_* settings."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "GRADECAST_", "VIRTUAL_ENV"))
    }
    return {**inherited, **settings}


def test_installed_wheel_migrates_and_serves_from_any_directory(tmp_path: Path) -> None:
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # sdist first, then the wheel from the unpacked sdist: what a release publishes, and no
    # stale build/ folder of the source tree can leak into the wheel.
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("gradecast-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", wheel, cwd=tmp_path)

    env = clean_environment(
        GRADECAST_DATABASE_URL=f"sqlite:///{tmp_path / 'installed.db'}",
        GRADECAST_DATA_DIR=str(tmp_path / "data"),
        GRADECAST_LOG_LEVEL="WARNING",
    )
    location = run(python, "-c", "import app; print(app.__file__)", cwd=elsewhere, env=env)
    assert Path(location.strip()).is_relative_to(venv), "app was imported from the sources"

    run(venv / "bin" / "gradecast", "migrate", cwd=elsewhere, env=env)

    port = free_port()
    server = subprocess.Popen(
        [venv / "bin" / "gradecast", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=elsewhere,
        env={**env, "GRADECAST_LOG_LEVEL": "INFO"},  # to see the shutdown complete
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1].decode()
            assert time.monotonic() < deadline, "the installed server never answered /readyz"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            break
        # Ready means migrated to the head of the migrations shipped in the wheel, which
        # must be the head of the source tree's alembic/.
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "revision": head_revision()}
        server.send_signal(signal.SIGTERM)
        stderr = server.communicate(timeout=30)[1].decode()
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so that the
        # exit status says "ended by SIGTERM" as for any program that does not catch it.
        assert server.returncode == -signal.SIGTERM, stderr
        assert "Application shutdown complete" in stderr
        assert "Traceback" not in stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert not list(elsewhere.iterdir()), "the installed copy wrote into its working directory"
