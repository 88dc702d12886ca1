"""Idempotency-Key on the POST routes that create something, over real HTTP, on SQLite and
PostgreSQL: a retry gets the first answer and causes nothing; another request under the same
key is a 422; keys are per organisation; concurrent duplicates have one effect."""

import threading
import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from app.db.models import IdempotentAnswer, Job
from tests.conftest import LiveServer, Tenant
from tests.test_cohorts import cohort_json
from tests.test_models import version_body

HEADER = "Idempotency-Key"


def fresh_key() -> dict[str, str]:
    return {HEADER: str(uuid.uuid4())}


def count_jobs(server: LiveServer, tenant: Tenant) -> int:
    with server.database.reads() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(Job)
                .where(Job.organisation_id == tenant.organisation_id)
            )
            or 0
        )


def upload(trainer: httpx.Client, name: str) -> dict[str, Any]:
    response = trainer.post("/cohorts", json=cohort_json(name=name))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def job_body(cohort_id: str) -> dict[str, Any]:
    return {"cohort_id": cohort_id, "model": "idem", "algorithm": "closed_form"}


def test_a_retried_job_is_queued_once_and_answered_the_same(
    live_server: LiveServer, tenant: Tenant, trainer: httpx.Client
) -> None:
    cohort = upload(trainer, "idem-jobs")
    headers = fresh_key()
    first = trainer.post("/jobs", json=job_body(cohort["id"]), headers=headers)
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    again = trainer.post("/jobs", json=job_body(cohort["id"]), headers=headers)
    assert again.status_code == 202
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers[REPLAYED] == "true"
    assert count_jobs(live_server, tenant) == 1
    # Without the header, the same body is a new job.
    assert trainer.post("/jobs", json=job_body(cohort["id"])).status_code == 202
    assert count_jobs(live_server, tenant) == 2


REPLAYED = "Idempotent-Replayed"


def test_the_same_key_with_another_body_is_a_422_naming_the_header(
    trainer: httpx.Client,
) -> None:
    headers = fresh_key()
    assert trainer.post("/models/a/versions", json=version_body(), headers=headers).is_success
    other = trainer.post("/models/a/versions", json=version_body(activate=False), headers=headers)
    assert other.status_code == 422, other.text
    assert other.json()["errors"][0]["loc"] == ["header", HEADER]
    # Another path is another request too.
    elsewhere = trainer.post("/models/b/versions", json=version_body(), headers=headers)
    assert elsewhere.status_code == 422
    assert trainer.get("/models/a/versions").json()["count"] == 1
    assert trainer.get("/models/b").status_code == 404


def test_keys_are_scoped_to_the_organisation(
    tenant: Tenant, other_tenant: Tenant, trainer: httpx.Client
) -> None:
    headers = fresh_key()
    mine = trainer.post("/models/shared/versions", json=version_body(), headers=headers)
    with other_tenant.client() as stranger:
        theirs = stranger.post("/models/shared/versions", json=version_body(), headers=headers)
        assert theirs.status_code == 201
        assert REPLAYED not in theirs.headers
        assert stranger.get("/models/shared/versions").json()["count"] == 1
    assert mine.status_code == 201
    assert trainer.get("/models/shared/versions").json()["count"] == 1


def test_a_failed_request_stores_nothing_and_the_key_stays_usable(
    live_server: LiveServer, tenant: Tenant, trainer: httpx.Client
) -> None:
    headers = fresh_key()
    missing = trainer.post("/jobs", json=job_body(str(uuid.uuid4())), headers=headers)
    assert missing.status_code == 404
    cohort = upload(trainer, "idem-after-404")
    fixed = trainer.post("/jobs", json=job_body(cohort["id"]), headers=headers)
    assert fixed.status_code == 202, fixed.text
    assert REPLAYED not in fixed.headers
    assert count_jobs(live_server, tenant) == 1


def test_concurrent_duplicates_have_one_effect(
    live_server: LiveServer, tenant: Tenant, trainer: httpx.Client
) -> None:
    cohort = upload(trainer, "idem-race")
    headers = fresh_key()
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        with tenant.client() as client:
            response = client.post("/jobs", json=job_body(cohort["id"]), headers=headers)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count_jobs(live_server, tenant) == 1
    done = [a for a in answers if a.status_code == 202]
    assert done, [a.text for a in answers]
    assert {a.content for a in done} == {done[0].content}
    assert all(a.status_code in (202, 409) for a in answers), [a.text for a in answers]


def test_a_stored_cohort_answer_is_the_answer_and_holds_no_pupil_data(
    live_server: LiveServer, tenant: Tenant, trainer: httpx.Client
) -> None:
    students = cohort_json()["students"]
    for i, student in enumerate(students):
        student["id"] = f"INE-SECRET-{i}"
    key = str(uuid.uuid4())
    document = cohort_json(name="idem-cohort", students=students)
    first = trainer.post("/cohorts", json=document, headers={HEADER: key})
    assert first.status_code == 201, first.text
    again = trainer.post("/cohorts", json=document, headers={HEADER: key})
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"]
    assert trainer.get("/cohorts").json()["count"] == 1
    with live_server.database.reads() as session:
        stored = session.get_one(IdempotentAnswer, (tenant.organisation_id, key))
    assert stored.body == first.content
    assert b"INE-SECRET" not in stored.body
    assert b'"students"' not in stored.body


def test_a_csv_upload_is_idempotent_too(trainer: httpx.Client) -> None:
    csv = "id;maths;info;concours\r\na;12;15;14\r\nb;5;9;7\r\nc;13;12;12\r\n"
    headers = {**fresh_key(), "Content-Type": "text/csv"}
    first = trainer.post("/cohorts?name=idem-csv", content=csv, headers=headers)
    assert first.status_code == 201, first.text
    again = trainer.post("/cohorts?name=idem-csv", content=csv, headers=headers)
    assert again.status_code == 201, again.text
    assert again.content == first.content
    # The query string is part of the request.
    renamed = trainer.post("/cohorts?name=idem-csv-2", content=csv, headers=headers)
    assert renamed.status_code == 422


def test_a_malformed_key_is_a_422_naming_the_header(trainer: httpx.Client) -> None:
    for bad in ("", "x" * 256, "with space"):
        response = trainer.post("/models/m/versions", json=version_body(), headers={HEADER: bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["errors"][0]["loc"] == ["header", HEADER]
    assert trainer.get("/models/m").status_code == 404


def test_the_role_is_checked_before_the_key(trainer: httpx.Client, reader: httpx.Client) -> None:
    headers = fresh_key()
    assert trainer.post("/models/r/versions", json=version_body(), headers=headers).is_success
    denied = reader.post("/models/r/versions", json=version_body(), headers=headers)
    assert denied.status_code == 403


def test_a_multipart_upload_is_idempotent_too(trainer: httpx.Client) -> None:
    csv = b"id;maths;info;concours\r\na;12;15;14\r\nb;5;9;7\r\nc;13;12;12\r\n"
    files = {"file": ("classe.csv", csv, "text/csv")}
    key = fresh_key()
    # One encoded body sent twice, as a client's retry does (a new boundary is a new body).
    request = trainer.build_request("POST", "/cohorts?name=idem-form", files=files, headers=key)
    body = request.read()
    first = trainer.post(
        "/cohorts?name=idem-form",
        content=body,
        headers={**key, "Content-Type": request.headers["Content-Type"]},
    )
    assert first.status_code == 201, first.text
    again = trainer.post(
        "/cohorts?name=idem-form",
        content=body,
        headers={**key, "Content-Type": request.headers["Content-Type"]},
    )
    assert again.status_code == 201, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content
    assert trainer.get("/cohorts").json()["count"] == 1
