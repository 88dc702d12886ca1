"""The request path of /predict: no database read on a cache hit, caches refreshed in the
background, revocations and activations still seen by every process in time."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.core.logging import request_id
from app.db.models import Role
from app.main import create_app
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant
from tests.processes import ServerProcess
from tests.test_predict import NEW_PUPIL, register


@pytest.fixture
def short_cache_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose key and model caches last 0.3 s, so a 1.5-s run crosses several."""
    import uvicorn

    from app.db.session import open_database
    from tests.conftest import free_port

    settings = make_settings(
        database_url, tmp_path, workers=0, auth_cache_seconds=0.3, model_cache_seconds=0.3
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    live = LiveServer(f"http://127.0.0.1:{port}", settings, open_database(settings), thread, server)
    live.app = app  # type: ignore[attr-defined]
    yield live
    live.stop()
    live.database.engine.dispose()


def test_a_cache_hit_reads_nothing_from_the_database(short_cache_server: LiveServer) -> None:
    """Statements run on behalf of a request (the request id is set) are counted while
    both caches expire several times over: after the first request, there are none."""
    tenant = make_tenant(short_cache_server)
    in_requests: list[str] = []
    engine = short_cache_server.app.state.gradecast.db.engine  # type: ignore[attr-defined]

    def count(*args: Any) -> None:
        if request_id.get() is not None:
            in_requests.append(str(args[2])[:60])

    with tenant.client(Role.trainer) as trainer:
        register(trainer)
    event.listen(engine, "before_cursor_execute", count)
    try:
        with tenant.client(Role.reader) as reader:
            body = {"model": "concours", "students": [NEW_PUPIL]}
            assert reader.post("/predict", json=body).status_code == 200
            warm = len(in_requests)
            assert warm > 0  # the first request looked its key and model up
            deadline = time.monotonic() + 1.5
            answered = 0
            while time.monotonic() < deadline:
                response = reader.post("/predict", json=body)
                assert response.status_code == 200, response.text
                answered += 1
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert answered > 10
    assert in_requests[warm:] == []


@pytest.fixture
def other_process(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """Another uvicorn, two worker processes, caching keys for 1 s and models for 0.5 s."""
    server = ServerProcess(
        live_server.settings.resolved_database_url,
        tmp_path,
        workers=2,
        env={
            "GRADECAST_WORKERS": "0",
            "GRADECAST_MODEL_CACHE_SECONDS": "0.5",
            "GRADECAST_AUTH_CACHE_SECONDS": "1",
        },
    ).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_revocation_reaches_every_process_within_the_auth_cache_time(
    tenant: Tenant, admin: httpx.Client, other_process: str
) -> None:
    keys = admin.get("/api-keys").json()["data"]
    reader_id = next(k["id"] for k in keys if k["role"] == "reader")
    with (
        httpx.Client(base_url=other_process, timeout=10) as other,
    ):

        def status(role: Role) -> int:
            # A fresh connection each time, so that both worker processes answer.
            headers = {"Authorization": f"Bearer {tenant.keys[role]}", "Connection": "close"}
            return other.get("/whoami", headers=headers).status_code

        for _ in range(20):  # both worker processes cache both keys
            assert status(Role.reader) == 200
            assert status(Role.trainer) == 200
        assert admin.delete(f"/api-keys/{reader_id}").status_code == 204
        revoked = time.monotonic()
        seen: list[tuple[float, int]] = []
        while time.monotonic() - revoked < 2.0:
            seen.append((time.monotonic() - revoked, status(Role.reader)))
            assert status(Role.trainer) == 200  # the other keys stay trusted
    last_accepted = max((t for t, s in seen if s == 200), default=0.0)
    assert last_accepted < 1.2, f"the revoked key was accepted {last_accepted:.2f} s after"
    assert all(s == 401 for t, s in seen if t > last_accepted)
