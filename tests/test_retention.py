"""Retention of pupils' data: retain_until from the upload or the organisation default, and
the workers' sweep that erases expired cohorts exactly as DELETE /cohorts/{id} does."""

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.db.base import utcnow
from app.db.migrations import upgrade_to_head
from app.db.models import CohortErasure, Role
from app.services.retention import erase_expired_cohorts
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server
from tests.test_cohorts import cohort_json
from tests.test_jobs import wait_for
from tests.test_privacy import file_bytes, find_in_database, marked_cohort


def soon(seconds: float = 1.0) -> str:
    return (utcnow() + timedelta(seconds=seconds)).isoformat()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_retain_until_is_taken_from_the_upload_and_listed(trainer: httpx.Client) -> None:
    wanted = "2031-07-01T00:00:00Z"
    created = trainer.post(
        "/cohorts", params={"retain_until": wanted}, json=cohort_json(name="kept-till-2031")
    )
    assert created.status_code == 201, created.text
    assert parse(created.json()["retain_until"]) == parse(wanted)
    kept = trainer.post("/cohorts", json=cohort_json(name="kept")).json()
    assert kept["retain_until"] is None
    listed = {c["name"]: c["retain_until"] for c in trainer.get("/cohorts").json()["data"]}
    assert parse(listed["kept-till-2031"]) == parse(wanted)
    assert listed["kept"] is None


def test_a_past_or_malformed_retain_until_is_a_422(trainer: httpx.Client) -> None:
    for value in ("2020-01-01T00:00:00Z", "next year"):
        response = trainer.post(
            "/cohorts", params={"retain_until": value}, json=cohort_json(name="never")
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["query", "retain_until"]
    assert trainer.get("/cohorts").json()["count"] == 0


def test_the_organisation_default_applies_without_a_parameter(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(make_settings(database_url, tmp_path, cohort_retention_days=30))
    try:
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as trainer:
            cohort = trainer.post("/cohorts", json=cohort_json(name="default")).json()
            chosen = trainer.post(
                "/cohorts",
                params={"retain_until": "2030-01-01T00:00:00Z"},
                json=cohort_json(name="own"),
            ).json()
        expected = utcnow() + timedelta(days=30)
        assert abs(parse(cohort["retain_until"]) - expected) < timedelta(minutes=1)
        assert parse(chosen["retain_until"]).year == 2030
    finally:
        server.stop()
        server.database.engine.dispose()


def test_the_sweep_erases_as_delete_does_once_with_several_workers(
    live_server: LiveServer, tenant: Tenant, trainer: httpx.Client
) -> None:
    cohort = trainer.post(
        "/cohorts", params={"retain_until": soon(1.5)}, json=cohort_json(name="expiring")
    ).json()
    job = trainer.post(
        "/jobs", json={"cohort_id": cohort["id"], "model": "kept", "algorithm": "closed_form"}
    ).json()
    assert wait_for(trainer, job["id"])["status"] == "succeeded"
    assert erase_expired_cohorts(live_server.database, utcnow()) == 0
    time.sleep(1.6)

    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(erase_expired_cohorts(live_server.database)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Another test's worker may have swept it too: whoever did, it was erased once.
    assert sum(counts) <= 1
    assert trainer.get(f"/cohorts/{cohort['id']}").status_code == 404
    assert erase_expired_cohorts(live_server.database) == 0

    with live_server.database.reads() as session:
        erasures = session.scalars(
            sa.select(CohortErasure).where(CohortErasure.organisation_id == tenant.organisation_id)
        ).all()
    assert [(e.n_students, e.scope, e.key_id) for e in erasures] == [(4, "cohort", None)]
    with tenant.client(Role.admin) as admin:
        erased = admin.get("/audit", params={"action": "cohort.erased"}).json()["data"]
        assert len(erased) == 1
        assert erased[0]["figures"]["reason"] == "retention"
        assert erased[0]["key_id"] is None
        assert erased[0]["object"] == f"/cohorts/{cohort['id']}"
        # The version trained on it keeps working and says where it came from.
        version = admin.get("/models/kept/versions/1").json()
        assert version["cohort_erased"] is True
        assert version["cohort_id"] is None
        pupil = {"maths": 13, "info": 14, "francais": 11}
        answer = admin.post("/predict", json={"model": "kept", "students": [pupil]})
        assert answer.status_code == 200, answer.text


def test_a_worker_sweeps_by_itself(database_url: str, tmp_path: Path) -> None:
    server = start_server(make_settings(database_url, tmp_path, housekeeping_seconds=0.2))
    try:
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as trainer:
            cohort = trainer.post(
                "/cohorts", params={"retain_until": soon(0.5)}, json=cohort_json(name="swept")
            ).json()
            deadline = time.monotonic() + 15
            while trainer.get(f"/cohorts/{cohort['id']}").status_code != 404:
                assert time.monotonic() < deadline, "the worker never swept the cohort"
                time.sleep(0.1)
    finally:
        server.stop()
        server.database.engine.dispose()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    path = tmp_path / "retention.db"
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, tmp_path, workers=0))
    try:
        yield server, path
    finally:
        server.stop()
        server.database.engine.dispose()


def test_a_swept_cohort_is_in_no_byte_of_the_sqlite_files(
    sqlite_server: tuple[LiveServer, Path],
) -> None:
    server, path = sqlite_server
    wal = path.with_name(path.name + "-wal")
    marker = "SWEPT-9c1e"
    tenant = make_tenant(server)
    with tenant.client(Role.trainer) as trainer:
        created = trainer.post(
            "/cohorts",
            params={"retain_until": soon(0.5)},
            json=marked_cohort("swept", marker=marker),
        )
        assert created.status_code == 201, created.text
    assert marker.encode() in file_bytes(path) + file_bytes(wal)
    time.sleep(0.6)
    assert erase_expired_cohorts(server.database) == 1
    assert find_in_database(server.database.engine, marker) == []
    assert marker.encode() not in file_bytes(path) + file_bytes(wal)
