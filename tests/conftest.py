"""Shared fixtures: real databases (a SQLite file, the PostgreSQL server), migrated with
Alembic, and the app served by uvicorn on a loopback port, reached over real HTTP."""

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from app.core.config import Settings
from app.db.migrations import upgrade_to_head
from app.db.models import Role
from app.db.session import Database, open_database, write_session
from app.main import create_app
from app.services.keys import get_or_create_organisation, issue_key

POSTGRES_URL = os.environ.get(
    "GRADECAST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("GRADECAST_REQUIRE_POSTGRES") == "1"
ROLES = (Role.admin, Role.trainer, Role.reader)


def postgres_available() -> bool:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def skip_or_fail_without_postgres() -> None:
    if postgres_available():
        return
    message = f"PostgreSQL is not reachable at {POSTGRES_URL}"
    if REQUIRE_POSTGRES:
        pytest.fail(message + " and GRADECAST_REQUIRE_POSTGRES=1 (CI) makes it mandatory")
    pytest.skip(message + "; set GRADECAST_TEST_POSTGRES_URL to run the PostgreSQL tests")


def reset_postgres(url: str) -> None:
    """Start from an empty schema so the migrations run from scratch."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database of each backend, shared by the session's tests (each test
    works in an organisation of its own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'gradecast.db'}"
    else:
        skip_or_fail_without_postgres()
        url = POSTGRES_URL
        reset_postgres(url)
    upgrade_to_head(url)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    settings: Settings
    database: Database
    thread: threading.Thread
    server: uvicorn.Server

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(settings: Settings) -> LiveServer:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    database = open_database(settings)
    return LiveServer(f"http://127.0.0.1:{port}", settings, database, thread, server)


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": tmp_path,
        "workers": 1,
        "job_lease_seconds": 5.0,
        "auth_cache_seconds": 0.0,
        "model_cache_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def fresh_server(tmp_path: Path, name: str, **overrides: object) -> Iterator[LiveServer]:
    """A server of its own on a new SQLite file, migrated, for a test that needs settings
    the shared one does not have; stopped, and its database closed, afterwards."""
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, tmp_path, **overrides))
    try:
        yield server
    finally:
        server.stop()
        server.database.engine.dispose()


@pytest.fixture(scope="session")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = make_settings(database_url, tmp_path_factory.mktemp("data"))
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


@dataclass
class Tenant:
    """An organisation with one key of each role, and HTTP clients that use them."""

    name: str
    organisation_id: uuid.UUID
    keys: dict[Role, str]
    base_url: str

    def client(self, role: Role = Role.admin, **kwargs: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.keys[role]}"},
            timeout=60,
            **kwargs,  # type: ignore[arg-type]
        )


def make_tenant(server: LiveServer) -> Tenant:
    name = f"school-{uuid.uuid4().hex[:12]}"
    with write_session(server.database) as session:
        organisation = get_or_create_organisation(session, name)
        keys = {
            role: issue_key(session, organisation.id, f"{role.value} key", role)[1]
            for role in ROLES
        }
        organisation_id = organisation.id
    return Tenant(name, organisation_id, keys, server.url)


@pytest.fixture
def tenant(live_server: LiveServer) -> Tenant:
    return make_tenant(live_server)


@pytest.fixture
def other_tenant(live_server: LiveServer) -> Tenant:
    return make_tenant(live_server)


@pytest.fixture
def admin(tenant: Tenant) -> Iterator[httpx.Client]:
    with tenant.client(Role.admin) as client:
        yield client


@pytest.fixture
def trainer(tenant: Tenant) -> Iterator[httpx.Client]:
    with tenant.client(Role.trainer) as client:
        yield client


@pytest.fixture
def reader(tenant: Tenant) -> Iterator[httpx.Client]:
    with tenant.client(Role.reader) as client:
        yield client


@pytest.fixture
def anonymous(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client
