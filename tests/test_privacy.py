"""Grep-style privacy tests: where an issued key and pupils' data must never be found
(database, responses, logs), and that an erased cohort is gone from every table and, on
SQLite, from the bytes of the database file and its WAL."""

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.db.migrations import upgrade_to_head
from app.db.models import Role
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server
from tests.test_models import version_body

MARKER = "MARKER-7f3a"
# Four decimals, so that no duration or count in a log line contains one by chance.
ODD_GRADES = (13.3719, 17.2953, 4.6187, 11.8341)
# This test's own HTTP client logs the URLs it requests; the server's loggers are the rest.
CLIENT_LOGGERS = {"httpx", "httpcore"}


def marked_cohort(name: str, marker: str = MARKER) -> dict[str, Any]:
    maths, info, francais, concours = ODD_GRADES
    rows = [(maths, info, francais, concours), (5, 9, 12, 7), (13, 12, 13, 12), (10, 12, 15, 11)]
    return {
        "name": name,
        "features": ["maths", "info", "francais"],
        "target": "concours",
        "students": [
            {"id": f"{marker}-{i}", "maths": m, "info": n, "francais": f, "concours": c}
            for i, (m, n, f, c) in enumerate(rows)
        ],
    }


def database_dump(engine: sa.Engine) -> list[tuple[str, str, bytes]]:
    """Every value of every column of every table, as bytes (text as UTF-8)."""
    found: list[tuple[str, str, bytes]] = []
    with engine.connect() as connection:
        metadata = sa.MetaData()
        metadata.reflect(bind=connection)
        for table in metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if value is None:
                        continue
                    data = value if isinstance(value, bytes) else str(value).encode()
                    found.append((table.name, column.name, data))
    return found


def find_in_database(engine: sa.Engine, needle: str) -> list[tuple[str, str]]:
    return [(t, c) for t, c, data in database_dump(engine) if needle.encode() in data]


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def server_text(self) -> str:
        """Every server record rendered with every attribute, as any formatter could."""
        parts = []
        for record in self.records:
            if record.name.split(".")[0] in CLIENT_LOGGERS:
                continue
            parts.append(record.getMessage())
            parts.extend(f"{k}={v!r}" for k, v in record.__dict__.items())
            if record.exc_info:
                parts.append(logging.Formatter().formatException(record.exc_info))
        return "\n".join(parts)


@pytest.fixture
def root_logs() -> Iterator[Recorder]:
    recorder = Recorder()
    root = logging.getLogger()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
        root.setLevel(level)


def test_an_issued_key_is_never_stored_echoed_or_logged_nor_are_pupils_data(
    live_server: LiveServer, tenant: Tenant, root_logs: Recorder
) -> None:
    responses: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        responses.append(response)

    hooks = {"response": [keep]}
    with tenant.client(Role.admin, event_hooks=hooks) as admin:
        created = admin.post("/api-keys", json={"name": "integration", "role": "trainer"})
        assert created.status_code == 201
        key, key_id = created.json()["key"], created.json()["id"]
        responses.clear()  # the creation response is the one place the key may be
        with httpx.Client(
            base_url=live_server.url,
            headers={"Authorization": f"Bearer {key}"},
            event_hooks=hooks,
            timeout=60,
        ) as client:
            assert client.get("/whoami").status_code == 200
            cohort = client.post("/cohorts", json=marked_cohort("privacy"))
            assert cohort.status_code == 201, cohort.text
            cohort_id = cohort.json()["id"]
            assert client.get(f"/cohorts/{cohort_id}/students").status_code == 200
            assert client.post("/cohorts", json=marked_cohort("privacy")).status_code == 409
            bad = marked_cohort("bad")
            bad["students"][1]["maths"] = "13,3719"
            assert client.post("/cohorts", json=bad).status_code == 422
            csv = f"id;maths;info;francais;concours\n{MARKER}-9;13,3719;17,2953;4,6187;99\n"
            refused = client.post(
                "/cohorts",
                params={"name": "csv"},
                content=csv.encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert refused.status_code == 422
            assert client.post("/models/m/versions", json=version_body()).status_code == 201
            pupil = {"id": MARKER, "maths": 13.3719, "info": 17.2953, "francais": 4.6187}
            predicted = client.post("/predict", json={"model": "m", "students": [pupil]})
            assert predicted.status_code == 200
            wrong = {**pupil, "info": "17,2953"}
            assert client.post("/predict", json={"model": "m", "students": [wrong]}).is_error
            job = client.post("/jobs", json={"cohort_id": cohort_id, "model": "t"})
            assert job.status_code == 202
            assert client.get(f"/jobs/{job.json()['id']}").status_code == 200
            in_url = client.get("/cohorts", params={"api_key": key})
            assert in_url.status_code == 422
        assert admin.get("/api-keys").status_code == 200
        assert admin.delete(f"/api-keys/{key_id}").status_code == 204
        with httpx.Client(base_url=live_server.url, event_hooks=hooks, timeout=60) as anonymous:
            revoked = anonymous.get("/whoami", headers={"Authorization": f"Bearer {key}"})
            assert revoked.status_code == 401
        # Erase the pupils, so that the log check below also covers the deletion.
        assert admin.delete(f"/cohorts/{cohort_id}").status_code == 204

    assert len(responses) >= 15
    for response in responses:
        text = response.content + str(response.headers).encode()
        assert key.encode() not in text, (response.request.method, response.request.url)

    assert find_in_database(live_server.database.engine, key) == []
    # The erased cohort's pupils are in no table of either backend.
    assert find_in_database(live_server.database.engine, MARKER) == []
    # Nor its suffix: a key stored split, or as a prefix for display, would show here.
    assert find_in_database(live_server.database.engine, key[-16:]) == []

    logged = root_logs.server_text()
    assert any(r.name == "gradecast.access" for r in root_logs.records)
    for secret in [key, key[-16:], MARKER, *map(str, ODD_GRADES), "13,3719", "17,2953"]:
        assert secret not in logged, f"{secret!r} was logged"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A SQLite server of its own, so that its files hold only this test's writes."""
    path = tmp_path / "erasure.db"
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, tmp_path, workers=0))
    try:
        yield server, path
    finally:
        server.stop()
        server.database.engine.dispose()


def file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def checkpoint(engine: sa.Engine) -> None:
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()


def test_an_erased_cohort_is_in_no_table_and_no_byte_of_the_sqlite_files(
    sqlite_server: tuple[LiveServer, Path],
) -> None:
    server, path = sqlite_server
    wal = path.with_name(path.name + "-wal")
    marker = f"{MARKER}-{uuid.uuid4().hex[:8]}".encode()
    tenant = make_tenant(server)
    with tenant.client(Role.trainer) as trainer:
        kept = trainer.post("/cohorts", json=marked_cohort("kept", marker="other"))
        assert kept.status_code == 201
        cohort = trainer.post("/cohorts", json=marked_cohort("erased", marker=marker.decode()))
        assert cohort.status_code == 201, cohort.text
        cohort_id = cohort.json()["id"]
        # The marker is really written somewhere, or this test could never fail.
        assert marker in file_bytes(path) + file_bytes(wal)
        assert find_in_database(server.database.engine, marker.decode())

        assert trainer.delete(f"/cohorts/{cohort_id}").status_code == 204

        assert find_in_database(server.database.engine, marker.decode()) == []
        # The cohort's own id (a random UUID, no pupil data) stays only in the erasure record,
        # which says when it was erased, by which key and how many pupils it had.
        assert find_in_database(server.database.engine, cohort_id.replace("-", "")) == [
            ("cohort_erasures", "cohort_id")
        ]
        # No checkpoint of ours: the service's own deletion must have left no trace.
        assert marker not in file_bytes(path), "the database file holds the erased pupils"
        assert marker not in file_bytes(wal), "the WAL holds the erased pupils"
        checkpoint(server.database.engine)
        assert marker not in file_bytes(path) + file_bytes(wal)
        # The other cohort is untouched.
        students = trainer.get(f"/cohorts/{kept.json()['id']}/students").json()
        assert students["count"] == 4
        assert students["data"][0]["id"] == "other-0"


def test_a_pupil_erased_by_id_is_in_no_table_and_no_byte_of_the_sqlite_files(
    sqlite_server: tuple[LiveServer, Path],
) -> None:
    server, path = sqlite_server
    wal = path.with_name(path.name + "-wal")
    marker = f"{MARKER}-{uuid.uuid4().hex[:8]}"
    tenant = make_tenant(server)
    with tenant.client(Role.trainer) as trainer:
        cohorts = []
        for name in ("first", "second"):
            body = marked_cohort(name, marker="other")
            body["students"][1]["id"] = marker  # the same pupil in both cohorts
            response = trainer.post("/cohorts", json=body)
            assert response.status_code == 201, response.text
            cohorts.append(response.json()["id"])
        assert marker.encode() in file_bytes(path) + file_bytes(wal)

        erased = trainer.delete(f"/students/{marker}")
        assert erased.status_code == 200, erased.text
        assert erased.json()["rows_erased"] == 2
        assert marker not in erased.text

        assert find_in_database(server.database.engine, marker) == []
        assert marker.encode() not in file_bytes(path), "the database file holds the pupil"
        assert marker.encode() not in file_bytes(wal), "the WAL holds the pupil"
        checkpoint(server.database.engine)
        assert marker.encode() not in file_bytes(path) + file_bytes(wal)
        for cohort_id in cohorts:
            assert trainer.get(f"/cohorts/{cohort_id}").json()["n_students"] == 3
        assert trainer.delete(f"/students/{marker}").status_code == 404
