"""The proof of idempotent writes: a client sends 1,000 writes, each retried 1 to 3 times,
while the server process is SIGKILLed and restarted twice in the middle. Afterwards each key
had exactly one effect and every answer to a key is the same answer."""

import os
import random
import secrets
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.processes import ServerProcess, private_database
from tests.test_cohorts import cohort_json
from tests.test_models import version_body

pytestmark = pytest.mark.slow

WRITES = int(os.environ.get("GRADECAST_IDEMPOTENCY_WRITES", "1000"))
CLIENTS = 6
Answer = tuple[int, bytes, str | None]


def request_for(i: int, cohort_id: str) -> tuple[str, dict[str, Any]]:
    """A mix of the three idempotent writes: mostly jobs, some versions, some cohorts."""
    if i % 10 == 0:
        return "/cohorts", cohort_json(name=f"proof-{i}")
    if i % 10 == 1:
        return "/models/proof/versions", version_body(activate=False)
    return "/jobs", {"cohort_id": cohort_id, "model": "proof", "algorithm": "closed_form"}


class Client:
    """Sends each write 2 to 4 times, and again whenever the server is away (a transport
    error, a 503, a 409 for a key still held by a request the kill interrupted)."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.answers: dict[str, list[Answer]] = defaultdict(list)
        self.lock = threading.Lock()
        self.done = 0

    def send(self, path: str, body: dict[str, Any], idempotency_key: str) -> Answer:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = self.http.post(
                    path, json=body, headers={"Idempotency-Key": idempotency_key}
                )
                if response.status_code not in (409, 503):
                    return response.status_code, response.content, response.headers.get("location")
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come back"
            time.sleep(0.05)

    def write(self, i: int, cohort_id: str, rng: random.Random) -> None:
        path, body = request_for(i, cohort_id)
        key = f"proof-{i}-{uuid.uuid4()}"
        for _ in range(1 + rng.randint(1, 3)):
            answer = self.send(path, body, key)
            with self.lock:
                self.answers[key].append(answer)
        with self.lock:
            self.done += 1


def effects(database_url: str) -> dict[str, set[str]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            jobs = connection.execute(sa.text("SELECT id FROM jobs")).scalars().all()
            versions = connection.execute(sa.text("SELECT version FROM model_versions")).scalars()
            cohorts = connection.execute(
                sa.text("SELECT name FROM cohorts WHERE name LIKE 'proof-%'")
            ).scalars()
            recorded = connection.execute(sa.text("SELECT action, object FROM audit_events")).all()
            return {
                "job.queued": {
                    o.rsplit("/", 1)[1].replace("-", "") for a, o in recorded if a == "job.queued"
                },
                "version.created": {
                    o.rsplit("/", 1)[1] for a, o in recorded if a == "version.created"
                },
                "cohort.uploaded": {o for a, o in recorded if a == "cohort.uploaded"},
                "jobs": {uuid.UUID(str(j)).hex for j in jobs},
                "versions": {str(v) for v in versions},
                "cohorts": set(cohorts),
            }
    finally:
        engine.dispose()


def test_writes_retried_across_two_server_kills_have_one_effect_each(
    database_url: str, tmp_path: Path
) -> None:
    database = private_database(database_url, tmp_path, "gradecast_idempotency_proof")
    admin_key = "gc_" + secrets.token_urlsafe(32)
    # No worker runs the queued jobs: lift the quota on queued jobs above the writes.
    env = {
        "GRADECAST_BOOTSTRAP_ADMIN_KEY": admin_key,
        "GRADECAST_WORKERS": "0",
        "GRADECAST_MAX_ACTIVE_JOBS": str(10 * WRITES),
    }
    server = ServerProcess(database, tmp_path, env=env).start()
    client = Client(server.url, admin_key)
    try:
        cohort = client.http.post("/cohorts", json=cohort_json(name="base"))
        assert cohort.status_code == 201, cohort.text
        cohort_id = cohort.json()["id"]
        kills = 0

        def killer() -> None:
            nonlocal kills
            for share in (1 / 3, 2 / 3):
                while client.done < WRITES * share:
                    time.sleep(0.01)
                server.kill()
                kills += 1
                server.start()

        rng = random.Random(13)
        seeds = [rng.randrange(2**32) for _ in range(WRITES)]
        started = time.monotonic()
        thread = threading.Thread(target=killer)
        thread.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [
                pool.submit(client.write, i, cohort_id, random.Random(seeds[i]))
                for i in range(WRITES)
            ]:
                future.result()
        thread.join()
        print(f"{WRITES} writes, {kills} kills, {time.monotonic() - started:.1f} s")
        assert kills == 2
    finally:
        client.http.close()
        server.stop()

    seen: dict[str, set[str]] = {"jobs": set(), "versions": set(), "cohorts": set()}
    for key, answers in client.answers.items():
        assert 2 <= len(answers) <= 4
        assert len(set(answers)) == 1, f"{key}: the answers disagree: {set(answers)}"
        status, body, location = answers[0]
        assert status in (201, 202), (key, status, body)
        assert location is not None
        kind = location.split("/")[1]
        if kind == "jobs":
            seen["jobs"].add(uuid.UUID(location.rsplit("/", 1)[1]).hex)
        elif kind == "models":
            seen["versions"].add(location.rsplit("/", 1)[1])
        else:
            seen["cohorts"].add(httpx.Response(201, content=body).json()["name"])
    assert len(client.answers) == WRITES
    stored = effects(database)
    # Each committed write has its audit event, and no interrupted one has any.
    assert stored.pop("job.queued") == stored["jobs"]
    assert stored.pop("version.created") == stored["versions"]
    assert len(stored.pop("cohort.uploaded")) == len(stored["cohorts"]) + 1
    # One effect per key: as many rows as keys, each named by the answers of one key only.
    assert stored == seen
    assert sum(len(s) for s in seen.values()) == WRITES
