"""Evaluations above GRADECAST_SYNC_EVALUATION_LIMIT: a 202 and an evaluation job, which a
worker computes into the very evaluation the request would have stored. Over real HTTP, on
both databases; the limit is lowered so that 60 pupils are "too many"."""

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import delete, select

from app.db.models import ModelVersion, Role, WebhookDelivery
from app.db.session import write_session
from app.services import jobs as job_service
from app.worker.runner import Worker
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server
from tests.test_evaluations import assert_close, expected_figures, school_year, upload
from tests.test_jobs import submit, wait_for

LIMIT = 50
PUPILS = 60  # above LIMIT
HOOK = "https://sis.example.invalid/hook"
EVENTS = ["job.succeeded", "job.failed", "job.cancelled", "evaluation.created"]


def low_limit_server(
    database_url: str, tmp_path: Path, **overrides: object
) -> Iterator[LiveServer]:
    server = start_server(
        make_settings(database_url, tmp_path, sync_evaluation_limit=LIMIT, **overrides)
    )
    yield server
    server.stop()
    server.database.engine.dispose()


@pytest.fixture(scope="module")
def low(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The shared database, served with the limit lowered and a worker."""
    yield from low_limit_server(database_url, tmp_path_factory.mktemp("low"))


@pytest.fixture
def idle(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """No worker, a short lease: the test runs the worker's loop itself, when it chooses.
    The database is the shared one, whose other servers' workers would take these jobs:
    hence one of its own (tests.processes.private_database)."""
    from tests.processes import private_database

    url = private_database(database_url, tmp_path, "gradecast_evaluation_jobs")
    yield from low_limit_server(url, tmp_path, workers=0, job_lease_seconds=0.5)


def trained_and_later(client: httpx.Client) -> dict[str, Any]:
    """Version 1 (closed_form, trained on 80 pupils), and a later cohort of PUPILS pupils
    in three classes, one pupil without a class."""
    X_train, y_train = school_year(1, 80, 2, 18)
    training = upload(client, "promo 2019-2020", X_train, y_train)
    job = submit(client, cohort_id=training["id"], model="concours", algorithm="closed_form")
    return {
        "training": training,
        "training_job": job["id"],
        **later_cohort(client),
    }


def later_cohort(client: httpx.Client, name: str = "promo 2020-2021") -> dict[str, Any]:
    X, y = school_year(2, PUPILS)
    groups: list[str | None] = [["3A", "3B", "3C"][i % 3] for i in range(PUPILS)]
    groups[5] = None
    return {"later": upload(client, name, X, y, groups=groups), "X": X, "y": y, "groups": groups}


def evaluate(client: httpx.Client, cohort_id: str, **kwargs: Any) -> httpx.Response:
    return client.post(
        "/models/concours/versions/1/evaluations", json={"cohort_id": cohort_id}, **kwargs
    )


def webhook_events(server: LiveServer, webhook_id: str) -> list[tuple[str, dict[str, Any]]]:
    """What the webhook was queued, in order: (event, data) as it will be signed and sent."""
    with server.database.reads() as session:
        rows = session.execute(
            select(WebhookDelivery.event, WebhookDelivery.body)
            .where(WebhookDelivery.webhook_id == uuid.UUID(webhook_id))
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        ).all()
    return [(event, json.loads(body)["data"]) for event, body in rows]


def test_above_the_limit_a_job_stores_what_the_request_would_have(
    low: LiveServer, live_server: LiveServer
) -> None:
    tenant = make_tenant(low)
    with tenant.client(Role.admin) as admin, tenant.client(Role.trainer) as trainer:
        hook = admin.post("/webhooks", json={"url": HOOK, "events": EVENTS})
        assert hook.status_code == 201, hook.text
        year = trained_and_later(trainer)
        assert wait_for(trainer, year["training_job"])["status"] == "succeeded"
        cohort_id = year["later"]["id"]

        response = evaluate(trainer, cohort_id)
        assert response.status_code == 202, response.text
        queued = response.json()
        assert response.headers["Location"] == f"/jobs/{queued['id']}"
        assert queued["kind"] == "evaluation"
        assert (queued["model"], queued["model_version"], queued["cohort_id"]) == (
            "concours",
            1,
            cohort_id,
        )
        for training_only in ("algorithm", "hyperparameters", "activate", "gate_cohort_id"):
            assert queued[training_only] is None, training_only
        assert queued["evaluation_id"] is None
        # The body is the job as GET /jobs/{id} shows it (the same fields, the same types).
        assert set(queued) == set(trainer.get(f"/jobs/{queued['id']}").json())

        job = wait_for(trainer, queued["id"])
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1
        assert job["progress"]["steps_done"] == job["progress"]["total_steps"] == 1
        assert job["activation"] is None
        url = f"/models/concours/versions/1/evaluations/{job['evaluation_id']}"
        assert job["evaluation_url"] == url
        by_job = trainer.get(url)
        assert by_job.status_code == 200, by_job.text
        stored = by_job.json()
        assert stored["id"] == job["evaluation_id"]
        assert trainer.get("/models/concours/versions/1/evaluations").json()["data"] == [stored]

        # Against numpy on the same rows (as tests/test_evaluations.py writes them out).
        theta = np.asarray(trainer.get("/models/concours/versions/1").json()["theta"])
        X, y = year["X"], year["y"]
        expected = expected_figures(theta, X, y, None)
        expected.pop("interval_coverage")
        assert_close(stored, expected)
        predicted = np.clip(X @ theta[1:] + theta[0], 0, 20)
        np.testing.assert_allclose(
            np.asarray(stored["sample"]), np.column_stack([predicted, y]), rtol=1e-12
        )
        groups = np.asarray(year["groups"], dtype=object)
        for label, figures in stored["by_group"].items():
            rows = groups == label
            want = expected_figures(theta, X[rows], y[rows], None)
            want.pop("interval_coverage")
            assert_close(figures, want)

    # The same cohort within the request (the default limit): the same figures, digit for digit.
    with dataclasses.replace(tenant, base_url=live_server.url).client(Role.trainer) as trainer:
        sync = evaluate(trainer, cohort_id)
        assert sync.status_code == 201, sync.text
        assert sync.headers["Location"].startswith("/models/concours/versions/1/evaluations/")
        assert trainer.get(sync.headers["Location"]).json() == sync.json()
    same = {"id", "created_at"}
    assert {k: v for k, v in sync.json().items() if k not in same} == {
        k: v for k, v in stored.items() if k not in same
    }

    with tenant.client(Role.admin) as admin:
        trail = admin.get("/audit", params={"limit": 1000}).json()["data"]
    about_job = [(e["action"], e["status"]) for e in trail if e["object"] == f"/jobs/{job['id']}"]
    assert sorted(about_job) == [("job.finished", "succeeded"), ("job.queued", "ok")]
    (queued_event,) = [e for e in trail if e["object"] == f"/jobs/{job['id']}" and e["figures"]]
    assert queued_event["figures"] == {
        "kind": "evaluation",
        "model": "concours",
        "version": 1,
        "cohort": cohort_id,
    }
    created = [e for e in trail if e["action"] == "evaluation.created"]
    assert [e["figures"]["rmse"] for e in created] == [sync.json()["rmse"], stored["rmse"]]
    events = webhook_events(low, hook.json()["id"])
    evaluation_events = [data for event, data in events if event == "evaluation.created"]
    assert [e["evaluation_id"] for e in evaluation_events] == [stored["id"], sync.json()["id"]]
    ended = [data for event, data in events if event == "job.succeeded"]
    assert ended[-1]["job_id"] == job["id"]
    assert ended[-1]["kind"] == "evaluation"
    assert ended[-1]["evaluation_id"] == stored["id"]
    assert ended[-1]["model_version"] == 1


def test_the_job_path_refuses_bad_input_before_anything_is_queued(
    low: LiveServer, other_tenant: Tenant
) -> None:
    tenant = make_tenant(low)
    with tenant.client(Role.trainer) as trainer, tenant.client(Role.reader) as reader:
        year = trained_and_later(trainer)
        assert wait_for(trainer, year["training_job"])["status"] == "succeeded"
        with other_tenant.client(Role.trainer) as stranger:
            foreign = upload(stranger, "autre école", year["X"], year["y"])
        bac = upload(trainer, "bac blanc", year["X"], year["y"], target="bac")
        url = "/models/concours/versions/1/evaluations"
        cases: list[tuple[httpx.Client, str, dict[str, Any], int, list[str]]] = [
            (trainer, url, {"cohort_id": foreign["id"]}, 404, ["body", "cohort_id"]),
            (trainer, url, {"cohort_id": bac["id"]}, 422, ["body", "cohort_id"]),
            (
                trainer,
                "/models/concours/versions/9/evaluations",
                {"cohort_id": year["later"]["id"]},
                404,
                ["path", "version"],
            ),
            (
                trainer,
                "/models/autre/versions/1/evaluations",
                {"cohort_id": year["later"]["id"]},
                404,
                ["path", "name"],
            ),
            (reader, url, {"cohort_id": year["later"]["id"]}, 403, []),
        ]
        for client, target, body, status, loc in cases:
            response = client.post(target, json=body)
            assert response.status_code == status, (body, response.text)
            if loc:
                assert loc in [error["loc"] for error in response.json()["errors"]]
        assert "'concours'" in trainer.post(url, json={"cohort_id": bac["id"]}).json()["detail"]
        jobs = trainer.get("/jobs").json()
        assert [j["kind"] for j in jobs["data"]] == ["training"]
        assert trainer.get(url).json()["count"] == 0


def test_an_idempotent_retry_gets_the_same_202_and_one_job(low: LiveServer) -> None:
    tenant = make_tenant(low)
    with tenant.client(Role.trainer) as trainer:
        year = trained_and_later(trainer)
        assert wait_for(trainer, year["training_job"])["status"] == "succeeded"
        key = {"Idempotency-Key": f"evaluation-{uuid.uuid4()}"}
        first = evaluate(trainer, year["later"]["id"], headers=key)
        again = evaluate(trainer, year["later"]["id"], headers=key)
        assert first.status_code == again.status_code == 202, again.text
        assert again.headers["Location"] == first.headers["Location"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.content
        wait_for(trainer, first.json()["id"])
        kinds = [j["kind"] for j in trainer.get("/jobs").json()["data"]]
        assert sorted(kinds) == ["evaluation", "training"]
        assert trainer.get("/models/concours/versions/1/evaluations").json()["count"] == 1


def run_worker(server: LiveServer) -> bool:
    """One turn of a worker's loop, as `gradecast worker` runs it: recover, claim, run."""
    return Worker(server.database, server.settings, name="test-worker").run_once()


def admin_of_new_tenant(server: LiveServer) -> httpx.Client:
    return make_tenant(server).client(Role.admin)


def queued_evaluation(
    server: LiveServer, client: httpx.Client
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trained version 1 (a worker turn), and an evaluation job queued on a later cohort."""
    year = trained_and_later(client)
    assert run_worker(server)
    assert client.get(f"/jobs/{year['training_job']}").json()["status"] == "succeeded"
    response = evaluate(client, year["later"]["id"])
    assert response.status_code == 202, response.text
    return year, response.json()


def test_a_cancelled_evaluation_job_stores_nothing(idle: LiveServer) -> None:
    with admin_of_new_tenant(idle) as client:
        _, job = queued_evaluation(idle, client)
        cancelled = client.post(f"/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["kind"] == "evaluation"
        assert run_worker(idle) is False  # nothing left to claim
        done = client.get(f"/jobs/{job['id']}").json()
        assert (done["status"], done["evaluation_id"]) == ("cancelled", None)
        assert client.get("/models/concours/versions/1/evaluations").json()["count"] == 0
        assert client.get("/audit", params={"action": "evaluation.created"}).json()["data"] == []


@pytest.mark.parametrize("gone", ["cohort", "version"])
def test_what_an_evaluation_job_names_gone_before_it_runs_fails_it_saying_so(
    idle: LiveServer, gone: str
) -> None:
    with admin_of_new_tenant(idle) as client:
        year, job = queued_evaluation(idle, client)
        if gone == "cohort":
            assert client.delete(f"/cohorts/{year['later']['id']}").status_code == 204
            reason = "the cohort of this evaluation was erased before it ran"
        else:
            # No route deletes a version; an operator's hand in the database can.
            with write_session(idle.database) as session:
                session.execute(delete(ModelVersion).where(ModelVersion.version == 1))
            reason = "version 1 of model 'concours' no longer exists"
        assert run_worker(idle)
        done = client.get(f"/jobs/{job['id']}").json()
        assert (done["status"], done["error"], done["evaluation_id"]) == ("failed", reason, None)
        trail = client.get("/audit", params={"action": "job.finished"}).json()["data"]
        assert {(e["object"], e["status"]) for e in trail} >= {(f"/jobs/{job['id']}", "failed")}


def test_an_evaluation_job_whose_worker_died_runs_again(idle: LiveServer) -> None:
    """A worker SIGKILLed mid-job stops heartbeating: its lease runs out, the job is
    re-queued and the next worker computes it, once."""
    with admin_of_new_tenant(idle) as client:
        _, job = queued_evaluation(idle, client)
        with write_session(idle.database) as session:
            claimed = job_service.claim_next(session, "a-worker-that-will-die")
            assert claimed is not None
            assert claimed.id == uuid.UUID(job["id"])
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "running"
        deadline = time.monotonic() + 20
        while run_worker(idle) is False and time.monotonic() < deadline:
            time.sleep(0.05)  # until the lease has run out
        done = client.get(f"/jobs/{job['id']}").json()
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert client.get("/models/concours/versions/1/evaluations").json()["count"] == 1


def test_the_job_quota_counts_evaluation_jobs(database_url: str, tmp_path: Path) -> None:
    from tests.processes import private_database

    url = private_database(database_url, tmp_path, "gradecast_evaluation_quota")
    for server in low_limit_server(url, tmp_path, workers=0, max_active_jobs=2):
        with admin_of_new_tenant(server) as client:
            year, first = queued_evaluation(server, client)
            more = later_cohort(client, "promo 2021-2022")
            second = evaluate(client, more["later"]["id"])
            assert second.status_code == 202, second.text
            refused = evaluate(client, year["later"]["id"])
            assert refused.status_code == 429, refused.text
            assert "GRADECAST_MAX_ACTIVE_JOBS" in refused.json()["detail"]
            assert refused.headers["Retry-After"]
            assert client.get("/jobs", params={"status": "queued"}).json()["count"] == 2
            assert first["id"] != second.json()["id"]


def test_the_promotion_gate_evaluates_a_cohort_above_the_limit(low: LiveServer) -> None:
    """The gate runs in the worker: the request's limit is no rule of it."""
    tenant = make_tenant(low)
    with tenant.client(Role.trainer) as trainer:
        year = trained_and_later(trainer)
        assert wait_for(trainer, year["training_job"])["status"] == "succeeded"
        gated = submit(
            trainer,
            cohort_id=year["training"]["id"],
            model="concours",
            algorithm="gd",
            iterations=50,
            learning_rate=0.001,
            activate="if_better",
            gate_cohort_id=year["later"]["id"],
        )
        done = wait_for(trainer, gated["id"])
        assert done["status"] == "succeeded", done
        figures = done["activation"]["figures"]
        assert done["activation"]["rule"] == "gate", done["activation"]
        assert figures["new_evaluation_id"], done
        assert figures["active_evaluation_id"], done
        assert "cannot be evaluated" not in done["activation"]["reason"]
        listed = trainer.get(f"/models/concours/versions/{done['model_version']}/evaluations")
        assert listed.json()["count"] == 1
        assert listed.json()["data"][0]["n"] == PUPILS
