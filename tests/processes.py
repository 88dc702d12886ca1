"""Real server and worker processes for fault tests: started, signalled, restarted."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServerProcess:
    """``uvicorn app.main:create_app --factory`` on a loopback port, as operators run it."""

    database_url: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "ServerProcess":
        env = {
            **os.environ,
            "GRADECAST_DATABASE_URL": self.database_url,
            "GRADECAST_DATA_DIR": str(self.data_dir),
            "GRADECAST_LOG_LEVEL": "WARNING",
            **self.env,
        }
        command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("the server process exited at start")
            if time.monotonic() > deadline:
                raise RuntimeError("the server process did not become ready")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, then wait until the database has ended the process's sessions: a
        PostgreSQL backend that had the COMMIT may still be committing when the client is
        gone, and a test reading the state before that would see the write undone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        wait_for_sessions_to_end(self.database_url)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for_sessions_to_end(database_url: str, timeout: float = 30) -> None:
    """Until no other session is connected to this PostgreSQL database (nothing to wait for
    on SQLite: a killed process's transaction is rolled back at the next open)."""
    import sqlalchemy as sa

    if sa.engine.make_url(database_url).get_backend_name() != "postgresql":
        return
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                if connection.scalar(query) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the killed process's database sessions did not end")
            time.sleep(0.05)
    finally:
        engine.dispose()


def start_worker(database_url: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env={
            **os.environ,
            "GRADECAST_DATABASE_URL": database_url,
            "GRADECAST_LOG_LEVEL": "WARNING",
            **env,
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def private_database(
    database_url: str, tmp_path: Path, name: str = "gradecast_private", revision: str = "head"
) -> str:
    """A migrated database of its own, so that no other test server's in-process worker
    takes the jobs meant for the processes under test (or, with `revision`, a database as
    an older release left it)."""
    import sqlalchemy as sa
    from alembic import command

    from app.db.migrations import alembic_config

    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        private = f"sqlite:///{tmp_path / (name + '.db')}"
    else:
        # Derived from the test database's name, so two suites on one server don't collide.
        name = f"{url.database}_{name}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        private = url.set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(private), revision)
    return private
