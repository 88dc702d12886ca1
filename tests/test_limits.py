"""Quotas per organisation and rate limits per key, over real HTTP: what is refused, with
which status and headers, that nothing is stored past a quota, and that several server
processes together let no more through than the limit."""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.ratelimit import REFUSAL_DELAY_SECONDS
from app.db.models import Role
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server
from tests.processes import ServerProcess, private_database
from tests.test_jobs import upload_example

REQUESTS_PER_MINUTE = 40
PUPILS_PER_MINUTE = 100
HAND_SET = {
    "features": ["maths", "info", "francais"],
    "target": "concours",
    "theta": [0, 0.33, 0.33, 0.33],
    "grade_range": [0, 20],
    "activate": True,
}


@pytest.fixture(scope="module")
def limited(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Small limits, and no worker: queued jobs stay queued (a database of its own, so that
    no other test server's worker runs them)."""
    data_dir = tmp_path_factory.mktemp("limits")
    settings = make_settings(
        private_database(database_url, data_dir, "gradecast_limits"),
        data_dir,
        workers=0,
        rate_limit_per_minute=REQUESTS_PER_MINUTE,
        predict_pupils_per_minute=PUPILS_PER_MINUTE,
        max_active_jobs=2,
        max_cohorts=2,
        max_stored_pupils=250,
    )
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


@pytest.fixture
def school(limited: LiveServer) -> Tenant:
    return make_tenant(limited)


def pupils(n: int) -> list[dict[str, Any]]:
    return [{"maths": 10, "info": 12, "francais": 14} for _ in range(n)]


def small_cohort(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "features": ["maths"],
        "target": "concours",
        "students": [{"maths": 10, "concours": 11}, {"maths": 12, "concours": 13}],
    }


def assert_rate_limited(response: httpx.Response, policy: str, quota: int) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["errors"][0]["loc"] == ["header", "authorization"]
    assert f"at most {quota} {policy} per minute" in body["detail"]
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert response.headers["RateLimit-Policy"] == f'"{policy}";q={quota};w=60'
    assert response.headers["RateLimit"] == f'"{policy}";r=0;t={retry_after}'
    return retry_after


def test_a_key_over_its_request_rate_gets_429_and_the_headers(school: Tenant) -> None:
    with school.client(Role.reader) as reader, school.client(Role.trainer) as trainer:
        answers = [reader.get("/whoami").status_code for _ in range(REQUESTS_PER_MINUTE)]
        assert answers == [200] * REQUESTS_PER_MINUTE
        asked = time.monotonic()
        refused = reader.get("/whoami")
        # Answered after a delay: a client retrying in a loop is slowed to one try a second.
        assert time.monotonic() - asked >= REFUSAL_DELAY_SECONDS * 0.9
        retry_after = assert_rate_limited(refused, "requests", REQUESTS_PER_MINUTE)
        assert retry_after <= 60 / REQUESTS_PER_MINUTE + 1
        # Per key: the organisation's other keys are not held back.
        assert trainer.get("/whoami").status_code == 200
        # The bucket refills continuously: a token every 1.5 s.
        time.sleep(60 / REQUESTS_PER_MINUTE + 0.2)
        assert reader.get("/whoami").status_code == 200
        # At most 1.7 tokens came back (the refusal itself took a second): soon refused again.
        assert 429 in [reader.get("/whoami").status_code for _ in range(3)]


def test_an_unknown_key_is_a_401_not_a_429(limited: LiveServer) -> None:
    with httpx.Client(base_url=limited.url, headers={"Authorization": "Bearer gc_nope"}) as c:
        statuses = {c.get("/whoami").status_code for _ in range(REQUESTS_PER_MINUTE + 5)}
    assert statuses == {401}


def test_pupils_predicted_per_minute_per_key(school: Tenant) -> None:
    with school.client(Role.trainer) as trainer, school.client(Role.reader) as reader:
        assert trainer.post("/models/course/versions", json=HAND_SET).status_code == 201
        body = {"model": "course", "students": pupils(60)}
        assert reader.post("/predict", json=body).status_code == 200
        refused = reader.post("/predict", json=body)
        assert_rate_limited(refused, "pupils", PUPILS_PER_MINUTE)
        # CSV predictions count their pupils the same way.
        csv = "maths;info;francais\n" + "10;12;14\n" * 60
        refused_csv = reader.post(
            "/predict?model=course", content=csv, headers={"Content-Type": "text/csv"}
        )
        assert_rate_limited(refused_csv, "pupils", PUPILS_PER_MINUTE)
        # A batch larger than a minute's budget passes once, on a full bucket, and then
        # nothing more until the debt is paid back.
        big = {"model": "course", "students": pupils(150)}
        first = trainer.post("/predict", json=big)
        assert first.status_code == 200, first.text
        assert len(first.json()["predictions"]) == 150
        assert_rate_limited(
            trainer.post("/predict", json={"model": "course", "students": pupils(1)}),
            "pupils",
            PUPILS_PER_MINUTE,
        )


def test_queued_and_running_jobs_over_the_quota_are_a_429(school: Tenant) -> None:
    with school.client(Role.trainer) as trainer:
        cohort = upload_example(trainer)
        job = {"cohort_id": cohort["id"], "model": "m", "algorithm": "closed_form"}
        first, second = (trainer.post("/jobs", json=job) for _ in range(2))
        assert first.status_code == second.status_code == 202
        third = trainer.post("/jobs", json=job)
        assert third.status_code == 429, third.text
        assert third.json()["code"] == "quota_exceeded"
        assert "GRADECAST_MAX_ACTIVE_JOBS" in third.json()["detail"]
        assert third.headers["Retry-After"] == "10"
        assert trainer.get("/jobs").json()["count"] == 2
        # A finished job frees its place.
        cancel = trainer.post(f"/jobs/{first.json()['id']}/cancel")
        assert cancel.json()["status"] == "cancelled"
        assert trainer.post("/jobs", json=job).status_code == 202


def test_stored_pupils_over_the_quota_are_a_409_and_nothing_is_stored(school: Tenant) -> None:
    with school.client(Role.trainer) as trainer:
        upload_example(trainer, "first")
        refused = trainer.post(
            "/cohorts",
            params={"name": "second"},
            content=Path("examples/cohort.csv").read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "quota_exceeded"
        assert "400" in refused.json()["detail"]
        assert "GRADECAST_MAX_STORED_PUPILS" in refused.json()["detail"]
        assert trainer.get("/cohorts").json()["count"] == 1


def test_cohorts_over_the_quota_are_a_409(school: Tenant, limited: LiveServer) -> None:
    with school.client(Role.trainer) as trainer:
        for name in ("a", "b"):
            assert trainer.post("/cohorts", json=small_cohort(name)).status_code == 201
        refused = trainer.post("/cohorts", json=small_cohort("c"))
        assert refused.status_code == 409, refused.text
        assert "GRADECAST_MAX_COHORTS" in refused.json()["detail"]
        assert trainer.get("/cohorts").json()["count"] == 2
        # Erasing one makes room.
        first = trainer.get("/cohorts").json()["data"][0]["id"]
        assert trainer.delete(f"/cohorts/{first}").status_code == 204
        assert trainer.post("/cohorts", json=small_cohort("c")).status_code == 201
    # Quotas are per organisation: another one starts with its own.
    with make_tenant(limited).client(Role.trainer) as other:
        assert other.post("/cohorts", json=small_cohort("a")).status_code == 201


def test_two_server_processes_share_the_limit(database_url: str, tmp_path: Path) -> None:
    """Each of N processes enforces 1/N: together they let through at most the limit
    (plus what refills meanwhile), whichever process each new connection lands on."""
    key = "gc_limits-test-bootstrap-key-0123456789abcdef0123"
    server = ServerProcess(
        private_database(database_url, tmp_path, "gradecast_limits_procs"),
        tmp_path,
        env={
            "GRADECAST_BOOTSTRAP_ADMIN_KEY": key,
            "GRADECAST_RATE_LIMIT_PER_MINUTE": "60",
            "GRADECAST_SERVER_PROCESSES": "2",
            "GRADECAST_WORKERS": "0",
        },
        workers=2,
    ).start()
    try:

        def ask(_: int) -> int:
            # A new connection each time, so the kernel spreads them over both processes.
            answer = httpx.get(
                f"{server.url}/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
            return answer.status_code

        started = time.monotonic()
        with ThreadPoolExecutor(30) as pool:
            statuses = list(pool.map(ask, range(150)))
        refilled = time.monotonic() - started  # 60 a minute in all: one a second
    finally:
        server.stop()
    accepted = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert 30 <= accepted <= 60 + refilled + 1, (accepted, refilled)
