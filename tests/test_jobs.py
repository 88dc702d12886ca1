"""Training jobs end to end over real HTTP: upload → train → poll → version → loss history →
activate / roll back, cancellation, divergence, if_better."""

import asyncio
import logging
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from app.db.migrations import upgrade_to_head
from app.db.models import ModelVersion, Role
from app.db.session import open_database
from app.engine import TrainingConfig, fit
from app.engine.data import split_holdout
from app.services.jobs import JobSignal
from app.tables import write_csv
from app.worker.runner import CHUNK_POINTS
from tests.conftest import LiveServer, Tenant, fresh_server, make_settings, make_tenant

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FINISHED = {"succeeded", "failed", "cancelled"}
# Seconds of training on a 20,000-pupil cohort (shuffled SGD rebuilds its batch maps every
# epoch, so it can't be sped past what a kill or a cancel needs to catch it running).
LONG_SGD: dict[str, Any] = {
    "algorithm": "sgd",
    "epochs": 600,
    "batch_size": 1,
    "shuffle": True,
    "learning_rate": 1e-5,
    "record_every": 1000,
}


def upload_example(client: httpx.Client, name: str = "exemple") -> dict[str, Any]:
    response = client.post(
        "/cohorts",
        params={"name": name},
        content=(EXAMPLES / "cohort.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    cohort: dict[str, Any] = response.json()
    return cohort


def upload_synthetic(
    client: httpx.Client, n: int, name: str = "big", seed: int = 0
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    grades = np.round(rng.uniform(0, 20, size=(n, 3)), 1)
    concours = np.clip(0.5 * grades[:, 0] + 0.5 * grades[:, 1] + rng.normal(0, 1, n), 0, 20)
    students = [
        {"maths": m, "info": i, "francais": f, "concours": c}
        for (m, i, f), c in zip(grades.tolist(), concours.tolist(), strict=True)
    ]
    body = {
        "name": name,
        "features": ["maths", "info", "francais"],
        "target": "concours",
        "students": students,
    }
    response = client.post("/cohorts", json=body)
    assert response.status_code == 201, response.text
    cohort: dict[str, Any] = response.json()
    return cohort


def submit(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    return job


def wait_for(
    client: httpx.Client, job_id: str, statuses: set[str] = FINISHED, timeout: float = 60
) -> dict[str, Any]:
    """Until the job is in one of `statuses`: with `?wait=` when that is its end (the server
    answers as soon as it ends), else polling."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        params = {"wait": round(min(remaining, 30.0), 3)} if statuses <= FINISHED else {}
        job: dict[str, Any] = client.get(f"/jobs/{job_id}", params=params).json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job['status']} after {timeout}s: {job}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "closed_form"},
        {
            "algorithm": "gd",
            "learning_rate": 0.002,
            "iterations": 1000,
            "init_theta": [0, 0.33, 0.33, 0.33],
        },
        {
            "algorithm": "sgd",
            "learning_rate": 0.01,
            "epochs": 50,
            "batch_size": 10,
            "standardize": True,
        },
    ],
    ids=["closed_form", "gd", "sgd"],
)
def test_train_each_algorithm_end_to_end(trainer: httpx.Client, params: dict[str, Any]) -> None:
    cohort = upload_example(trainer)
    job = submit(trainer, cohort_id=cohort["id"], model="concours", **params)
    assert job["status"] in {"queued", "running", "succeeded"}
    assert job["hyperparameters"]["algorithm"] == params["algorithm"]
    if params["algorithm"] == "sgd":
        assert job["hyperparameters"]["batch_size"] == params.get("batch_size", 10)

    done = wait_for(trainer, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["model_version"] == 1
    assert done["attempts"] == 1
    assert done["started_at"]
    assert done["finished_at"]
    assert done["progress"]["steps_done"] == done["progress"]["total_steps"]

    version = trainer.get("/models/concours/versions/1").json()
    assert version["job_id"] == job["id"]
    assert version["cohort_id"] == cohort["id"]
    assert version["features"] == ["maths", "info", "francais"]
    assert set(version["coefficients"]["weights"]) == {"maths", "info", "francais"}
    # The course converges to about (0, 0.48, 0.53, -0.01): so must we, on data made that way.
    assert version["coefficients"]["weights"]["maths"] == pytest.approx(0.48, abs=0.08)
    assert version["coefficients"]["weights"]["info"] == pytest.approx(0.53, abs=0.08)
    metrics = version["metrics"]
    assert metrics["train_r2"] > 0.9
    assert metrics["residual_std"] > 0
    assert trainer.get("/models/concours").json()["active_version"] == 1

    loss = trainer.get(f"/jobs/{job['id']}/loss").json()
    points = loss["points"]
    assert loss["total_points"] == len(points) >= 1
    assert points[0]["step"] == 0
    if params["algorithm"] != "closed_form":
        assert len(points) == done["progress"]["total_steps"] + 1
        assert points[-1]["train_loss"] < points[0]["train_loss"]
        assert points[-1]["train_loss"] == pytest.approx(metrics["train_mse"], rel=1e-6)


def test_gd_from_the_course_start_records_step_zero(trainer: httpx.Client) -> None:
    cohort = upload_example(trainer)
    job = submit(
        trainer,
        cohort_id=cohort["id"],
        algorithm="gd",
        learning_rate=0.001,
        iterations=10,
        init_theta=[0, 0.33, 0.33, 0.33],
    )
    wait_for(trainer, job["id"])
    points = trainer.get(f"/jobs/{job['id']}/loss").json()["points"]
    rows = trainer.get(f"/cohorts/{cohort['id']}/students", params={"limit": 1000}).json()["data"]
    X = np.array(
        [[r["grades"]["maths"], r["grades"]["info"], r["grades"]["francais"]] for r in rows]
    )
    y = np.array([r["grades"]["concours"] for r in rows])
    direct = float(np.mean((X @ [0.33, 0.33, 0.33] - y) ** 2))
    assert points[0]["train_loss"] == pytest.approx(direct, rel=1e-9)
    assert [p["step"] for p in points] == list(range(11))


def test_loss_thinning_and_csv(trainer: httpx.Client) -> None:
    cohort = upload_example(trainer)
    job = submit(
        trainer,
        cohort_id=cohort["id"],
        algorithm="sgd",
        epochs=20,
        batch_size=10,
        validation_fraction=0.2,
        seed=3,
    )
    wait_for(trainer, job["id"])
    full = trainer.get(f"/jobs/{job['id']}/loss").json()["points"]
    assert len(full) == 20 * 16 + 1
    assert all(p["val_loss"] is not None for p in full)
    thinned = trainer.get(f"/jobs/{job['id']}/loss", params={"max_points": 50}).json()["points"]
    assert len(thinned) == 50
    assert thinned[0] == full[0]
    assert thinned[-1] == full[-1]
    csv = trainer.get(f"/jobs/{job['id']}/loss", params={"max_points": 5, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "step,epoch,train_loss,val_loss,grad_norm"
    assert len(lines) == 6
    accept = trainer.get(
        f"/jobs/{job['id']}/loss", params={"max_points": 5}, headers={"Accept": "text/csv"}
    )
    assert accept.text == csv.text


def test_loss_as_csv_and_packed_float64_columns_holds_every_point_as_json_does(
    trainer: httpx.Client,
) -> None:
    cohort = upload_example(trainer)
    job = submit(
        trainer,
        cohort_id=cohort["id"],
        algorithm="sgd",
        epochs=3,
        batch_size=4,
        learning_rate=1e-5,
        validation_fraction=0.25,
        seed=5,
    )
    wait_for(trainer, job["id"])
    points = trainer.get(f"/jobs/{job['id']}/loss").json()["points"]
    names = ["step", "epoch", "train_loss", "val_loss", "grad_norm"]
    expected = np.array([[p[name] for name in names] for p in points], dtype=np.float64)

    packed = trainer.get(f"/jobs/{job['id']}/loss", params={"format": "f64"})
    assert packed.status_code == 200
    assert packed.headers["content-type"] == "application/octet-stream"
    assert packed.headers["x-loss-columns"] == ",".join(names)
    assert int(packed.headers["x-loss-points"]) == len(points)
    assert int(packed.headers["x-loss-total-points"]) == len(points)
    columns = np.frombuffer(packed.content, dtype="<f8").reshape(len(names), len(points))
    assert np.array_equal(columns.T, expected)

    csv = trainer.get(f"/jobs/{job['id']}/loss", params={"format": "csv"})
    lines = csv.text.split("\r\n")
    assert lines[0] == ",".join(names)
    assert lines[-1] == ""
    # Every float exactly as it reads back, ints without a decimal point.
    assert lines[1].split(",")[:2] == ["0", "0"]
    read = np.array([[float(c) for c in line.split(",")] for line in lines[1:-1]])
    assert np.array_equal(read, expected)

    thinned = trainer.get(f"/jobs/{job['id']}/loss", params={"format": "f64", "max_points": 3})
    assert int(thinned.headers["x-loss-points"]) == 3
    assert int(thinned.headers["x-loss-total-points"]) == len(points)
    assert len(thinned.content) == 3 * len(names) * 8


def example_table() -> tuple[list[str], np.ndarray]:
    """examples/cohort.csv's ids, and its grades then concours as floats."""
    rows = [line.split(";") for line in (EXAMPLES / "cohort.csv").read_text().splitlines()[1:]]
    grades = [[float(cell.replace(",", ".")) for cell in row[1:5]] for row in rows]
    return [row[0] for row in rows], np.array(grades)


@pytest.mark.parametrize("fraction", [0.0, 0.25])
def test_the_stored_history_is_the_engines_point_for_point(
    trainer: httpx.Client, fraction: float
) -> None:
    """60,000 to 80,000 points: several chunks from the engine and stored; every column
    read back is what the engine recorded, bit for bit (val_loss only with a hold-out)."""
    _, table = example_table()
    options: dict[str, Any] = {"algorithm": "sgd", "learning_rate": 1e-5, "epochs": 400}
    options |= {"batch_size": 1, "record_every": 1, "validation_fraction": fraction, "seed": 5}
    job = submit(trainer, cohort_id=upload_example(trainer)["id"], model="points", **options)
    assert wait_for(trainer, job["id"])["status"] == "succeeded"
    packed = trainer.get(f"/jobs/{job['id']}/loss", params={"format": "f64"})
    n = int(packed.headers["x-loss-points"])
    names = packed.headers["x-loss-columns"].split(",")
    columns = np.frombuffer(packed.content, dtype="<f8").reshape(len(names), n)
    history = fit(table[:, :3], table[:, 3], TrainingConfig(**options)).history
    expected = {
        "step": history.step,
        "epoch": history.epoch,
        "train_loss": history.train_risk,
        "val_loss": history.val_risk,
        "grad_norm": history.grad_norm,
    }
    assert n == len(history) > CHUNK_POINTS  # stored in more than one chunk
    assert names == [name for name, values in expected.items() if values is not None]
    for name, stored in zip(names, columns, strict=True):
        recorded = expected[name]
        assert recorded is not None
        assert np.array_equal(stored, recorded.astype(np.float64)), name
    # JSON and CSV, streamed a piece at a time at this length: the very text of the whole
    # written at once.
    typed = [
        c.astype(np.int64) if name in ("step", "epoch") else c
        for name, c in zip(names, columns, strict=True)
    ]
    by_name = dict(zip(names, (c.tolist() for c in typed), strict=True))
    points = [
        {
            "step": by_name["step"][i],
            "epoch": by_name["epoch"][i],
            "train_loss": by_name["train_loss"][i],
            "val_loss": by_name["val_loss"][i] if "val_loss" in by_name else None,
            "grad_norm": by_name["grad_norm"][i],
        }
        for i in range(n)
    ]
    as_json = trainer.get(f"/jobs/{job['id']}/loss")
    assert as_json.content == orjson.dumps(
        {"job_id": job["id"], "total_points": n, "points": points}
    )
    as_csv = trainer.get(f"/jobs/{job['id']}/loss", params={"format": "csv"})
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.content == write_csv(names, list(typed))


def test_diverging_job_fails_with_its_message_and_no_version(trainer: httpx.Client) -> None:
    cohort = upload_example(trainer)
    job = submit(
        trainer,
        cohort_id=cohort["id"],
        model="diverge",
        algorithm="gd",
        learning_rate=1.0,
        iterations=1000,
    )
    done = wait_for(trainer, job["id"])
    assert done["status"] == "failed"
    assert "learning_rate" in done["error"]
    assert "diverged" in done["error"]
    assert done["model_version"] is None
    assert trainer.get("/models/diverge").status_code == 404


def test_if_better_keeps_the_better_theta(trainer: httpx.Client) -> None:
    cohort = upload_example(trainer)
    best = wait_for(trainer, submit(trainer, cohort_id=cohort["id"], algorithm="closed_form")["id"])
    assert best["model_version"] == 1
    worse = wait_for(
        trainer,
        submit(trainer, cohort_id=cohort["id"], algorithm="gd", learning_rate=1e-4, iterations=5)[
            "id"
        ],
    )
    assert worse["status"] == "succeeded"
    assert worse["model_version"] == 2
    model = trainer.get("/models/concours").json()
    assert model["active_version"] == 1
    assert model["latest_version"] == 2

    always = wait_for(
        trainer,
        submit(
            trainer,
            cohort_id=cohort["id"],
            algorithm="gd",
            learning_rate=1e-4,
            iterations=5,
            activate="always",
        )["id"],
    )
    assert trainer.get("/models/concours").json()["active_version"] == always["model_version"] == 3

    rollback = trainer.put("/models/concours/active", json={"version": 1, "reason": "v3 is worse"})
    assert rollback.status_code == 200, rollback.text
    assert trainer.get("/models/concours").json()["active_version"] == 1
    history = trainer.get("/models/concours/activations").json()["data"]
    assert [(h["from_version"], h["to_version"]) for h in history][:3] == [
        (3, 1),
        (1, 3),
        (None, 1),
    ]


def test_job_validation(trainer: httpx.Client, reader: httpx.Client) -> None:
    cohort = upload_example(trainer)
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"learning_rate": 0}, ["body", "learning_rate"]),
        ({"learning_rate": -1}, ["body", "learning_rate"]),
        ({"epochs": 0}, ["body", "epochs"]),
        ({"batch_size": 0}, ["body", "batch_size"]),
        ({"algorithm": "adam"}, ["body", "algorithm"]),
        ({"validation_fraction": 1}, ["body", "validation_fraction"]),
        ({"init_theta": [0, 1]}, ["body", "init_theta"]),
        ({"colour": "red"}, ["body", "colour"]),
        ({"model": "../etc/passwd"}, ["body", "model"]),
        ({"activate": "sometimes"}, ["body", "activate"]),
        ({"patience": 3}, ["body"]),
    ]
    for extra, loc in cases:
        response = trainer.post("/jobs", json={"cohort_id": cohort["id"], **extra})
        assert response.status_code == 422, (extra, response.text)
        assert response.json()["errors"][0]["loc"][: len(loc)] == loc, (extra, response.json())
    missing = trainer.post("/jobs", json={"cohort_id": "00000000-0000-0000-0000-000000000000"})
    assert missing.status_code == 404
    assert reader.post("/jobs", json={"cohort_id": cohort["id"]}).status_code == 403
    assert trainer.get("/jobs").json()["count"] == 0


def test_cancel_running_and_finished_jobs(trainer: httpx.Client) -> None:
    cohort = upload_synthetic(trainer, 20_000)
    job = submit(
        trainer,
        cohort_id=cohort["id"],
        model="long",
        **LONG_SGD,
    )
    running = wait_for(trainer, job["id"], {"running", *FINISHED})
    assert running["status"] == "running", running

    # Progress and the loss history are visible while the job runs.
    deadline = time.monotonic() + 20
    while True:
        now = trainer.get(f"/jobs/{job['id']}").json()
        loss = trainer.get(f"/jobs/{job['id']}/loss").json()
        if now["progress"]["steps_done"] > 0 and loss["total_points"] > 0:
            break
        assert now["status"] == "running", now
        assert time.monotonic() < deadline, "no progress or history while running"
        time.sleep(0.1)
    assert now["progress"]["total_steps"] == 600 * 20_000
    assert 0 < now["progress"]["steps_done"] < now["progress"]["total_steps"]
    assert now["progress"]["risk"] is not None
    assert loss["points"][0]["step"] == 0

    asked = time.monotonic()
    response = trainer.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    done = wait_for(trainer, job["id"], timeout=10)
    assert done["status"] == "cancelled"
    assert time.monotonic() - asked < 2.0
    assert trainer.get("/models/long").status_code == 404
    again = trainer.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409


def test_jobs_are_listed_filtered_and_private(tenant: Tenant, other_tenant: Tenant) -> None:
    with tenant.client(Role.trainer) as trainer:
        cohort = upload_example(trainer)
        job = submit(trainer, cohort_id=cohort["id"], algorithm="closed_form", model="m1")
        wait_for(trainer, job["id"])
        assert trainer.get("/jobs", params={"status": "succeeded"}).json()["count"] == 1
        assert trainer.get("/jobs", params={"status": "queued"}).json()["count"] == 0
        assert trainer.get("/jobs", params={"model": "m1"}).json()["data"][0]["id"] == job["id"]
        assert trainer.get("/jobs", params={"status": "bogus"}).status_code == 422
    with tenant.client(Role.reader) as reader:
        assert reader.get(f"/jobs/{job['id']}").status_code == 200
        assert reader.post(f"/jobs/{job['id']}/cancel").status_code == 403
    with other_tenant.client(Role.admin) as stranger:
        assert stranger.get(f"/jobs/{job['id']}").status_code == 404
        assert stranger.get(f"/jobs/{job['id']}/loss").status_code == 404
        assert stranger.post(f"/jobs/{job['id']}/cancel").status_code == 404
        assert stranger.post("/jobs", json={"cohort_id": cohort["id"]}).status_code == 404
        assert stranger.get("/jobs").json()["count"] == 0


def test_deleting_the_cohort_keeps_versions_and_marks_provenance(trainer: httpx.Client) -> None:
    cohort = upload_example(trainer)
    wait_for(trainer, submit(trainer, cohort_id=cohort["id"], algorithm="closed_form")["id"])
    assert trainer.delete(f"/cohorts/{cohort['id']}").status_code == 204
    version = trainer.get("/models/concours/versions/1").json()
    assert version["cohort_erased"] is True
    assert version["cohort_id"] is None
    assert version["theta"]


@pytest.mark.parametrize("algorithm", ["gd", "sgd"])
def test_a_hold_out_too_large_for_the_cohort_is_a_422(
    trainer: httpx.Client, algorithm: str
) -> None:
    """Issue 14, bug 1: a 3-pupil cohort with validation_fraction=0.5 was a 500 (the
    engine's split raised before the service's own check could run)."""
    body = {
        "name": f"trois-{algorithm}",
        "features": ["maths"],
        "target": "concours",
        "students": [
            {"maths": 10, "concours": 11},
            {"maths": 12, "concours": 13},
            {"maths": 14, "concours": 15},
        ],
    }
    cohort = trainer.post("/cohorts", json=body).json()
    response = trainer.post(
        "/jobs",
        json={"cohort_id": cohort["id"], "algorithm": algorithm, "validation_fraction": 0.5},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "validation_fraction"]
    assert trainer.get("/jobs").json()["count"] == 0


def test_a_model_name_is_one_rule_for_versions_and_jobs(trainer: httpx.Client) -> None:
    """Issue 14, bug 2: POST /models/_x/versions was a 201 but POST /jobs {model: _x} a 422."""
    version = trainer.post(
        "/models/_x/versions",
        json={
            "features": ["maths", "info", "francais"],
            "target": "concours",
            "theta": [0, 0.33, 0.33, 0.33],
        },
    )
    assert version.status_code == 201, version.text
    cohort = upload_example(trainer, "nom-modele")
    job = submit(trainer, cohort_id=cohort["id"], model="_x", algorithm="closed_form")
    assert wait_for(trainer, job["id"])["status"] == "succeeded"
    assert trainer.get("/models/_x").json()["latest_version"] == 2
    for name in (".x", "x" * 101, "a b"):
        assert (
            trainer.post("/jobs", json={"cohort_id": cohort["id"], "model": name}).status_code
            == 422
        )
        assert trainer.post(
            f"/models/{name}/versions",
            json={"features": ["maths"], "target": "concours", "theta": [0, 1]},
        ).status_code in (404, 422)


def test_training_defaults_are_the_engines() -> None:
    """Issue 14: learning_rate was 1e-3 in the API schema and 1e-4 in the engine."""
    from app.engine import DEFAULT_FOLDS, TrainingConfig
    from app.schemas.jobs import TrainingParameters

    api = TrainingParameters()
    engine = TrainingConfig()
    # validation and folds choose how the service validates, not how the engine fits.
    assert (api.validation, api.folds) == ("holdout", DEFAULT_FOLDS)
    for name in set(TrainingParameters.model_fields) - {"validation", "folds"}:
        expected = getattr(engine, name)
        assert getattr(api, name) == (
            list(expected) if isinstance(expected, tuple) else expected
        ), name


def test_a_versions_feature_range_is_its_training_rows_with_or_without_a_hold_out(
    live_server: LiveServer, tenant: Tenant
) -> None:
    """Taken from the cohort's column statistics when every row trains, from the rows
    otherwise; both equal numpy's min and max of the training rows, also once the pupil
    holding a column's extreme has been erased."""
    ids, grades = example_table()
    table = grades[:, :3]

    def stored_range(job: dict[str, Any]) -> tuple[list[float], list[float]]:
        with live_server.database.reads() as session:
            version = session.scalars(
                sa.select(ModelVersion).where(ModelVersion.job_id == uuid.UUID(job["id"]))
            ).one()
            assert version.feature_min is not None
            assert version.feature_max is not None
            return list(version.feature_min), list(version.feature_max)

    with tenant.client(Role.trainer) as trainer:
        cohort = upload_example(trainer)
        for fraction in (0.0, 0.25):
            body = {"algorithm": "closed_form", "validation_fraction": fraction, "seed": 3}
            job = submit(trainer, cohort_id=cohort["id"], model="range", **body)
            assert wait_for(trainer, job["id"])["status"] == "succeeded"
            train_idx, _ = split_holdout(len(table), fraction, 3)
            train = table[train_idx]
            assert stored_range(job) == (train.min(axis=0).tolist(), train.max(axis=0).tolist())
        top = int(np.argmax(table[:, 0]))
        assert (table[:, 0] == table[top, 0]).sum() == 1  # the one pupil with the top maths
        assert trainer.delete(f"/students/{ids[top]}").status_code == 200
        rest = np.delete(table, top, axis=0)
        job = submit(trainer, cohort_id=cohort["id"], model="range", algorithm="closed_form")
        assert wait_for(trainer, job["id"])["status"] == "succeeded"
        assert stored_range(job) == (rest.min(axis=0).tolist(), rest.max(axis=0).tolist())


def test_a_job_queued_here_wakes_the_idle_workers_once_it_is_committed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signal.db'}"
    upgrade_to_head(url)
    database = open_database(make_settings(url, tmp_path, workers=0))
    signal = JobSignal()
    woken = threading.Event()

    def idle_worker(seen: int) -> None:
        signal.wait(seen, timeout=60)
        woken.set()

    try:
        # Rolled back: nothing was queued, no worker is woken.
        seen = signal.generation
        waiter = threading.Thread(target=idle_worker, args=(seen,), daemon=True)
        waiter.start()
        with database.writes() as session:
            signal.notify_after_commit(session)
            session.execute(sa.text("SELECT 1"))
            session.rollback()
        assert not woken.wait(0.5)
        assert signal.generation == seen
        # Committed: the waiting worker wakes at once, not at its 60-s timeout.
        with database.writes() as session:
            signal.notify_after_commit(session)
            session.execute(sa.text("SELECT 1"))
            session.commit()
        assert woken.wait(10)
        waiter.join(10)
        assert signal.generation == seen + 1
        # A worker that read the generation before the job was queued does not wait.
        signal.wait(seen, timeout=60)
    finally:
        database.engine.dispose()


def test_a_job_signal_wakes_a_request_waiting_on_the_event_loop() -> None:
    signal = JobSignal()

    async def scenario() -> None:
        # Moved before the wait began: no wait at all.
        seen = signal.generation
        signal.notify()
        await asyncio.wait_for(signal.wait_async(seen, timeout=60), 5)
        # Notified from a worker thread while the loop waits: woken, not timed out.
        seen = signal.generation
        threading.Timer(0.2, signal.notify).start()
        await asyncio.wait_for(signal.wait_async(seen, timeout=60), 10)
        assert signal.generation == seen + 1
        # Nothing happens: the wait ends at its timeout, and leaves no waiter behind.
        await signal.wait_async(signal.generation, timeout=0.05)
        assert not signal._waiters

    asyncio.run(scenario())


def test_get_job_with_wait_answers_when_the_job_ends(trainer: httpx.Client) -> None:
    """A running job cancelled meanwhile: the waiting request answers with its end, well
    before its own 30 s."""
    cohort = upload_synthetic(trainer, 20_000)
    job = submit(trainer, cohort_id=cohort["id"], model="waited", **LONG_SGD)
    wait_for(trainer, job["id"], {"running"})
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(
        target=lambda: answers.append(trainer.get(f"/jobs/{job['id']}", params={"wait": 30}).json())
    )
    waiter.start()
    time.sleep(0.3)
    assert not answers  # still waiting: the job runs
    assert trainer.post(f"/jobs/{job['id']}/cancel").status_code == 200
    waiter.join(25)
    assert not waiter.is_alive(), "the wait outlived the job"
    assert answers[0]["status"] == "cancelled"
    # A job that has already ended is answered at once, whatever the wait.
    assert trainer.get(f"/jobs/{job['id']}", params={"wait": 30}).json()["status"] == "cancelled"


def test_get_job_with_wait_runs_out_holding_no_thread(tmp_path: Path) -> None:
    """No worker: the job stays queued, each wait runs out (cut to the server's 3 s) and
    answers it as it is. Sixty requests wait at once, more than the 40 threads of the pool
    that runs the sync routes, and a sync route still answers while they all wait."""
    with fresh_server(tmp_path, "queued", workers=0, job_wait_seconds=3) as server:
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as trainer:
            cohort = upload_example(trainer)
            job = submit(trainer, cohort_id=cohort["id"], model="queued")
            answers: list[str] = []
            held: list[float] = []

            def waiting() -> None:
                with tenant.client(Role.reader) as reader:
                    started = time.monotonic()
                    got = reader.get(f"/jobs/{job['id']}", params={"wait": 30})
                    held.append(time.monotonic() - started)
                    answers.append(got.json()["status"])

            waiters = [threading.Thread(target=waiting) for _ in range(60)]
            for waiter in waiters:
                waiter.start()
            time.sleep(1.0)
            listed = trainer.get("/cohorts")  # a sync route, on the thread pool
            assert listed.status_code == 200
            assert not answers, "a wait ended before its time"
            for waiter in waiters:
                waiter.join(30)
            assert answers == ["queued"] * 60
            assert max(held) < 20, "a wait was not cut to GRADECAST_JOB_WAIT_SECONDS"


@pytest.mark.parametrize("wait", ["-1", "30.5", "soon", "nan", "inf"])
def test_get_job_wait_out_of_range_is_a_422_naming_it(trainer: httpx.Client, wait: str) -> None:
    job = submit(trainer, cohort_id=upload_example(trainer)["id"], model="ranges")
    answer = trainer.get(f"/jobs/{job['id']}", params={"wait": wait})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["query", "wait"]


def test_get_job_with_wait_is_a_404_at_once_for_another_organisations_job(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with tenant.client(Role.trainer) as trainer, other_tenant.client(Role.reader) as other:
        job = submit(trainer, cohort_id=upload_example(trainer)["id"], model="private")
        answer = other.get(f"/jobs/{job['id']}", params={"wait": 30})
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["loc"] == ["path", "job_id"]


def test_predict_answers_with_a_version_a_job_of_this_process_just_activated(
    tmp_path: Path,
) -> None:
    """Jobs take milliseconds: /predict must not wait for its cache's periodic check (an hour
    here) to see the version that a job in this process activated."""
    with fresh_server(tmp_path, "fresh", workers=1, model_cache_seconds=3600) as server:
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as trainer:
            cohort = upload_example(trainer)
            pupil = {"maths": 13, "info": 14, "francais": 11}
            for version in (1, 2):
                job = submit(trainer, cohort_id=cohort["id"], model="fresh", activate="always")
                assert wait_for(trainer, job["id"])["status"] == "succeeded"
                answer = trainer.post("/predict", json={"model": "fresh", "students": [pupil]})
                assert answer.status_code == 200, answer.text
                assert answer.json()["version"] == version


def test_a_wait_ends_when_its_client_hangs_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes its connection mid-wait stops the wait (no more reads of the
    job for nobody): the request ends within a poll, not at its 30 s."""
    caplog.set_level(logging.INFO, logger="gradecast.access")
    with fresh_server(tmp_path, "hangup", workers=0) as server:  # the job stays queued
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as trainer:
            cohort = upload_example(trainer)
            job = submit(trainer, cohort_id=cohort["id"], algorithm="closed_form")
        host, port = server.url.removeprefix("http://").split(":")
        request = (
            f"GET /jobs/{job['id']}?wait=30 HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {tenant.keys[Role.trainer]}\r\n"
            "X-Request-ID: hung-up\r\n\r\n"
        )
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(request.encode())
            time.sleep(0.5)
            connection.settimeout(0)
            with pytest.raises(BlockingIOError):
                connection.recv(1)  # still waiting: no answer yet
        deadline = time.monotonic() + 10
        while not any(getattr(r, "request_id", None) == "hung-up" for r in caplog.records):
            assert time.monotonic() < deadline, "the wait went on after its client hung up"
            time.sleep(0.05)
