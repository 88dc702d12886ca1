"""The audit trail over real HTTP, on SQLite and PostgreSQL: every change a request commits
has its event, written in the same transaction; /predict is counted; GET /audit filters,
pages and exports an organisation's own events only, and never shows a grade or a pupil."""

import csv
import io
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.db.base import utcnow
from app.db.models import AuditEvent, Job, JobStatus, Role
from app.db.session import write_session
from app.services import audit
from app.services import jobs as job_service
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server
from tests.processes import private_database
from tests.test_jobs import wait_for
from tests.test_models import version_body
from tests.test_privacy import ODD_GRADES, marked_cohort


def events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def predicted_pupils(client: httpx.Client) -> int:
    """The pupils the organisation's ``predict`` events count so far."""
    return sum(e["figures"]["pupils"] for e in events(client, action="predict"))


@pytest.fixture(scope="module")
def fast_flush(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose /predict counts are written every 0.2 s."""
    settings = make_settings(
        database_url, tmp_path_factory.mktemp("audit"), audit_flush_seconds=0.2
    )
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


def test_a_school_year_leaves_one_event_per_change_and_no_pupil_data(
    fast_flush: LiveServer,
) -> None:
    tenant = make_tenant(fast_flush)
    marker = f"INE-{uuid.uuid4().hex[:8]}"
    with tenant.client(Role.admin) as admin:
        cohort = admin.post("/cohorts", json=marked_cohort("year", marker=marker)).json()
        job = admin.post(
            "/jobs", json={"cohort_id": cohort["id"], "model": "year", "algorithm": "closed_form"}
        ).json()
        assert wait_for(admin, job["id"])["status"] == "succeeded"
        assert admin.post("/models/hand/versions", json=version_body()).status_code == 201
        assert admin.put("/models/year/active", json={"version": 1}).status_code == 200
        pupils = [{"id": f"{marker}-new", "maths": 13.3719, "info": 14, "francais": 11}] * 3
        for _ in range(2):
            assert admin.post("/predict", json={"model": "year", "students": pupils}).is_success
        assert admin.delete(f"/students/{marker}-1").status_code == 200
        spare = admin.post("/api-keys", json={"name": "spare", "role": "reader"}).json()
        assert admin.delete(f"/api-keys/{spare['id']}").status_code == 204
        assert admin.delete(f"/cohorts/{cohort['id']}").status_code == 204

        # The two requests' counts may fall in one flush or in two: wait for both.
        deadline = time.monotonic() + 10
        while predicted_pupils(admin) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        trail = events(admin)
        exported = admin.get("/audit", params={"format": "csv", "limit": 1000})

    actions = [e["action"] for e in trail]
    for expected in (
        "cohort.uploaded",
        "job.queued",
        "version.created",
        "version.activated",
        "job.finished",
        "student.erased",
        "key.created",
        "key.revoked",
        "cohort.erased",
        "predict",
    ):
        assert expected in actions, (expected, actions)
    assert actions.count("version.created") == 2
    by_action = {e["action"]: e for e in trail}
    assert by_action["cohort.uploaded"]["object"] == f"/cohorts/{cohort['id']}"
    assert by_action["cohort.uploaded"]["figures"]["pupils"] == 4
    assert by_action["cohort.uploaded"]["key_name"] == "admin key"
    assert by_action["job.finished"]["status"] == "succeeded"
    assert by_action["job.finished"]["object"] == f"/jobs/{job['id']}"
    assert by_action["cohort.erased"]["figures"]["reason"] == "request"
    predicted = [e for e in trail if e["action"] == "predict"]
    assert sum(e["figures"]["pupils"] for e in predicted) == 6
    assert sum(e["figures"]["requests"] for e in predicted) == 2
    assert predicted[0]["object"] == "/models/year/versions/1"
    # Requests' events carry their X-Request-ID; the worker's (job.finished) none.
    requested = ("cohort.uploaded", "job.queued", "key.created", "student.erased")
    assert all(e["request_id"] for e in trail if e["action"] in requested)
    assert by_action["job.finished"]["request_id"] is None
    ids = [e["id"] for e in trail]
    assert ids == sorted(ids)

    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(r["id"]) for r in rows] == ids
    for text in (exported.text, str(trail)):
        assert marker not in text
        for grade in ODD_GRADES:
            assert str(grade) not in text
            assert str(grade).replace(".", ",") not in text


def test_filters_and_cursor_pages(tenant: Tenant, admin: httpx.Client) -> None:
    for i in range(5):
        assert admin.post(f"/models/m{i}/versions", json=version_body()).status_code == 201
    created = events(admin, action="version.created")
    assert len(created) == 5
    assert events(admin, object="/models/m3/versions/1") == [
        e for e in events(admin) if e["object"] == "/models/m3/versions/1"
    ]
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "version.created", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = admin.get("/audit", params=params)
        body = response.json()
        pages.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            assert "Link" not in response.headers
            break
        assert f"cursor={cursor}" in response.headers["Link"]
    assert pages == created
    middle = created[2]["occurred_at"]
    assert events(admin, action="version.created", since=middle) == created[2:]
    assert events(admin, action="version.created", until=middle) == created[:2]
    whoami = admin.get("/whoami").json()
    assert events(admin, key_id=whoami["key_id"]) == events(admin)
    assert events(admin, key_id=str(uuid.uuid4())) == []


def test_another_organisations_events_are_never_visible(
    tenant: Tenant, other_tenant: Tenant, admin: httpx.Client
) -> None:
    assert admin.post("/models/secret/versions", json=version_body()).status_code == 201
    mine = events(admin)
    assert mine
    with other_tenant.client(Role.admin) as stranger:
        assert events(stranger) == []
        assert events(stranger, object=mine[0]["object"]) == []
        assert events(stranger, key_id=mine[0]["key_id"]) == []


def test_no_route_changes_or_deletes_an_event(admin: httpx.Client) -> None:
    paths = admin.get("/openapi.json").json()["paths"]
    assert set(paths["/audit"]) == {"get"}
    assert not [p for p in paths if p.startswith("/audit/")]
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert admin.request(method, "/audit").status_code == 405


def test_bad_filters_are_422s_naming_them(admin: httpx.Client) -> None:
    for params, name in (
        ({"since": "yesterday"}, "since"),
        ({"key_id": "42"}, "key_id"),
        ({"cursor": "abc"}, "cursor"),
        ({"action": "DROP TABLE"}, "action"),
        ({"format": "xml"}, "format"),
        ({"limit": 0}, "limit"),
    ):
        response = admin.get("/audit", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["errors"][0]["loc"] == ["query", name]


def count_events(server: LiveServer, organisation_id: uuid.UUID) -> int:
    with server.database.reads() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.organisation_id == organisation_id)
            )
            or 0
        )


def test_an_event_rolls_back_with_its_change(live_server: LiveServer, tenant: Tenant) -> None:
    def fail_after_recording() -> None:
        with write_session(live_server.database) as session:
            audit.record(session, tenant.organisation_id, "key.created", key_id=None, object="/x")
            session.flush()
            raise RuntimeError("the change failed after its event was recorded")

    with pytest.raises(RuntimeError, match="after its event"):
        fail_after_recording()
    assert count_events(live_server, tenant.organisation_id) == 0
    with write_session(live_server.database) as session:
        audit.record(session, tenant.organisation_id, "key.created", key_id=None, object="/x")
    assert count_events(live_server, tenant.organisation_id) == 1


def test_a_refused_request_leaves_no_event(
    live_server: LiveServer, tenant: Tenant, trainer: httpx.Client
) -> None:
    assert trainer.post("/models/ok/versions", json=version_body()).status_code == 201
    before = count_events(live_server, tenant.organisation_id)
    assert trainer.post("/models/ok/versions", json=version_body(theta=[1])).status_code == 422
    missing = {"cohort_id": str(uuid.uuid4()), "model": "m", "algorithm": "gd"}
    assert trainer.post("/jobs", json=missing).status_code == 404
    assert trainer.put("/models/ok/active", json={"version": 9}).status_code == 404
    assert count_events(live_server, tenant.organisation_id) == before


def test_record_refuses_what_an_event_must_not_hold(live_server: LiveServer) -> None:
    with write_session(live_server.database) as session:
        organisation = uuid.uuid4()
        cases: list[dict[str, Any]] = [{"grades": [12.5, 14.0]}, {f"f{i}": i for i in range(30)}]
        for figures in cases:
            with pytest.raises(ValueError, match="figure"):
                audit.record(
                    session, organisation, "predict", key_id=None, object=None, figures=figures
                )
        with pytest.raises(ValueError, match="unknown audit action"):
            audit.record(session, organisation, "grades.read", key_id=None, object=None)


def test_old_events_are_pruned_only_past_the_retention(
    live_server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    with write_session(live_server.database) as session:
        for days in (400, 10):
            audit.record(
                session,
                tenant.organisation_id,
                "key.created",
                key_id=None,
                object=f"/old/{days}",
                occurred_at=utcnow() - timedelta(days=days),
            )
    with write_session(live_server.database) as session:
        audit.prune_events(session, retention_days=365)
    with live_server.database.reads() as session:
        left = session.scalars(
            sa.select(AuditEvent.object).where(AuditEvent.organisation_id == tenant.organisation_id)
        ).all()
    assert left == ["/old/10"]


def test_a_cancelled_job_and_a_job_given_up_are_recorded(database_url: str, tmp_path: Path) -> None:
    # A database of its own: the session's live server runs a worker that would take the
    # jobs this test keeps queued or makes stale.
    url = private_database(database_url, tmp_path, "gradecast_audit_jobs")
    server = start_server(make_settings(url, tmp_path, workers=0))
    try:
        tenant = make_tenant(server)
        with tenant.client(Role.admin) as admin:
            cohort = admin.post("/cohorts", json=marked_cohort("cancel")).json()
            body = {"cohort_id": cohort["id"], "model": "c", "algorithm": "closed_form"}
            queued = admin.post("/jobs", json=body).json()
            assert admin.post(f"/jobs/{queued['id']}/cancel").status_code == 200
            assert admin.post(f"/jobs/{queued['id']}/cancel").status_code == 409
            stale = admin.post("/jobs", json=body).json()
            with write_session(server.database) as session:
                job = session.get_one(Job, uuid.UUID(stale["id"]))
                job.status = JobStatus.running
                job.attempts = 3
                job.heartbeat_at = utcnow() - timedelta(hours=1)
            with write_session(server.database) as session:
                assert job_service.requeue_stale(session, 30, 3) == 1
            cancelled = events(admin, action="job.cancelled")
            finished = events(admin, action="job.finished")
        assert [(e["object"], e["status"]) for e in cancelled] == [
            (f"/jobs/{queued['id']}", "cancelled")
        ]
        # A job's end is recorded whatever ended it: the cancel (by its key), the give-up.
        assert [(e["object"], e["status"]) for e in finished] == [
            (f"/jobs/{queued['id']}", "cancelled"),
            (f"/jobs/{stale['id']}", "failed"),
        ]
        assert {e["key_name"] for e in finished} == {"admin key"}
    finally:
        server.stop()
        server.database.engine.dispose()


def test_predict_counts_are_written_at_a_graceful_shutdown(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(make_settings(database_url, tmp_path, audit_flush_seconds=300))
    stopped = False
    try:
        tenant = make_tenant(server)
        with tenant.client(Role.reader) as reader, tenant.client(Role.admin) as admin:
            assert admin.post("/models/late/versions", json=version_body()).status_code == 201
            pupil = {"maths": 13, "info": 14, "francais": 11}
            assert reader.post("/predict", json={"model": "late", "students": [pupil]}).is_success
            assert events(admin, action="predict") == []
        server.stop()
        stopped = True
        with server.database.reads() as session:
            written = session.scalars(
                sa.select(AuditEvent).where(
                    AuditEvent.organisation_id == tenant.organisation_id,
                    AuditEvent.action == "predict",
                )
            ).all()
        assert [(e.key_name, e.figures) for e in written] == [
            ("reader key", {"model": "late", "version": 1, "pupils": 1, "requests": 1})
        ]
    finally:
        if not stopped:
            server.stop()
        server.database.engine.dispose()


def test_webhooks_are_recorded_and_their_creation_is_idempotent(admin: httpx.Client) -> None:
    body = {"url": "https://sis.example.invalid/audit-hook", "events": ["job.failed"]}
    key = {"Idempotency-Key": f"hook-{uuid.uuid4()}"}
    first = admin.post("/webhooks", json=body, headers=key)
    again = admin.post("/webhooks", json=body, headers=key)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()  # the same webhook, secret included: one effect
    other = admin.post("/webhooks", json={**body, "events": ["job.succeeded"]}, headers=key)
    assert other.status_code == 422, other.text
    assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    hook = first.json()["id"]
    assert [w["id"] for w in admin.get("/webhooks").json()["data"]].count(hook) == 1
    assert admin.delete(f"/webhooks/{hook}").status_code == 204
    created = events(admin, action="webhook.created", object=f"/webhooks/{hook}")
    deleted = events(admin, action="webhook.deleted", object=f"/webhooks/{hook}")
    assert [(e["figures"], e["key_name"]) for e in created] == [({"events": 1}, "admin key")]
    assert len(deleted) == 1
    assert first.json()["secret"] not in admin.get("/audit", params={"format": "csv"}).text
