"""validation=kfold jobs over real HTTP (SQLite and PostgreSQL): the version's cross-validated
figures, Θ on every pupil, the folds checked against the cohort, and if_better on cv_rmse."""

import time
from typing import Any

import httpx
import numpy as np
import pytest

from app.engine import kfold_indices
from tests.test_jobs import FINISHED, submit, upload_synthetic, wait_for


def _upload(client: httpx.Client, n: int, name: str) -> tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    X = np.round(rng.uniform(0, 20, size=(n, 2)), 1)
    y = np.round(np.clip(1 + 0.4 * X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 1, n), 0, 20), 1)
    students = [
        {"maths": m, "info": i, "concours": c}
        for (m, i), c in zip(X.tolist(), y.tolist(), strict=True)
    ]
    body = {"name": name, "features": ["maths", "info"], "target": "concours", "students": students}
    response = client.post("/cohorts", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), X, y


def _lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    theta: np.ndarray = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]), y, rcond=None)[0]
    return theta


def test_a_kfold_job_stores_the_cross_validated_figures(trainer: httpx.Client) -> None:
    cohort_id, X, y = _upload(trainer, 60, "kfold")
    job = submit(
        trainer, cohort_id=cohort_id, algorithm="closed_form", validation="kfold", folds=4, seed=9
    )
    done = wait_for(trainer, job["id"])
    assert done["status"] == "succeeded", done
    assert done["hyperparameters"]["validation"] == "kfold"
    assert done["hyperparameters"]["folds"] == 4
    version = trainer.get(f"/models/concours/versions/{done['model_version']}").json()
    metrics: dict[str, Any] = version["metrics"]
    expected = []
    for part in kfold_indices(60, 4, 9):
        train = np.setdiff1d(np.arange(60), part)
        theta = _lstsq(X[train], y[train])
        residual = y[part] - theta[0] - X[part] @ theta[1:]
        expected.append(float(np.sqrt(np.mean(residual**2))))
    assert [f["fold"] for f in metrics["folds"]] == [1, 2, 3, 4]
    assert [f["n_validation"] for f in metrics["folds"]] == [15, 15, 15, 15]
    np.testing.assert_allclose([f["rmse"] for f in metrics["folds"]], expected, rtol=1e-9)
    assert metrics["cv_rmse"] == pytest.approx(np.mean(expected), rel=1e-9)
    assert metrics["cv_rmse_std"] == pytest.approx(np.std(expected), rel=1e-6)
    # The final Θ is fitted on every pupil: no hold-out.
    assert version["n_train"] == 60
    np.testing.assert_allclose(version["theta"], _lstsq(X, y), rtol=1e-9)


def test_a_holdout_job_has_no_cross_validated_figures(trainer: httpx.Client) -> None:
    cohort_id, _, _ = _upload(trainer, 20, "holdout")
    done = wait_for(trainer, submit(trainer, cohort_id=cohort_id, algorithm="closed_form")["id"])
    metrics = trainer.get(f"/models/concours/versions/{done['model_version']}").json()["metrics"]
    assert "cv_rmse" not in metrics
    assert "folds" not in metrics
    assert "validation" not in done["hyperparameters"]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"folds": 6}, ["body", "folds"]),  # more folds than the 5 pupils
        ({"folds": 21}, ["body", "folds"]),
        ({"folds": 1}, ["body", "folds"]),
        ({"validation_fraction": 0.2}, ["body", "validation_fraction"]),
    ],
)
def test_bad_folds_are_a_422_and_store_nothing(
    trainer: httpx.Client, extra: dict[str, Any], loc: list[str]
) -> None:
    cohort_id, _, _ = _upload(trainer, 5, "cinq")
    body = {"cohort_id": cohort_id, "algorithm": "gd", "validation": "kfold", **extra}
    response = trainer.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    assert trainer.get("/jobs").json()["count"] == 0
    # Five folds of five pupils is leave-one-out, and allowed.
    ok = submit(trainer, cohort_id=cohort_id, algorithm="closed_form", validation="kfold", folds=5)
    assert wait_for(trainer, ok["id"])["status"] == "succeeded"


def test_if_better_compares_cv_rmse_when_both_versions_have_it(trainer: httpx.Client) -> None:
    cohort_id, _, _ = _upload(trainer, 40, "mieux")
    kfold = {"cohort_id": cohort_id, "validation": "kfold", "folds": 5}
    first = wait_for(trainer, submit(trainer, algorithm="gd", iterations=3, **kfold)["id"])
    assert trainer.get("/models/concours").json()["active_version"] == first["model_version"]
    better = wait_for(trainer, submit(trainer, algorithm="closed_form", **kfold)["id"])
    assert trainer.get("/models/concours").json()["active_version"] == better["model_version"]
    reasons = [a["reason"] for a in trainer.get("/models/concours/activations").json()["data"]]
    assert reasons[0].startswith("if_better: cv_rmse ")
    worse = wait_for(trainer, submit(trainer, algorithm="gd", iterations=3, **kfold)["id"])
    assert worse["status"] == "succeeded"
    assert trainer.get("/models/concours").json()["active_version"] == better["model_version"]


def test_a_kfold_sgd_job_fits_each_fold_and_counts_their_steps(trainer: httpx.Client) -> None:
    cohort_id, _, _ = _upload(trainer, 30, "sgd")
    body = {"algorithm": "sgd", "epochs": 3, "batch_size": 4, "validation": "kfold", "folds": 3}
    job = submit(trainer, cohort_id=cohort_id, **body)
    # The final fit (8 batches a epoch) then 3 folds of 20 pupils (5 batches), 3 epochs each.
    assert job["progress"]["total_steps"] == 3 * 8 + 3 * 3 * 5
    done = wait_for(trainer, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["steps_done"] == done["progress"]["total_steps"] == 69
    metrics = trainer.get(f"/models/concours/versions/{done['model_version']}").json()["metrics"]
    assert [f["n_validation"] for f in metrics["folds"]] == [10, 10, 10]
    assert metrics["cv_rmse"] == pytest.approx(np.mean([f["rmse"] for f in metrics["folds"]]))


def test_a_kfold_sgd_job_is_cancelled_while_its_folds_run(trainer: httpx.Client) -> None:
    cohort = upload_synthetic(trainer, 2_000, name="kfold-long")
    epochs = 1_000
    job = submit(
        trainer,
        cohort_id=cohort["id"],
        model="kfold-long",
        algorithm="sgd",
        epochs=epochs,
        batch_size=1,
        shuffle=True,
        learning_rate=1e-5,
        record_every=10_000,
        validation="kfold",
        folds=5,
    )
    final_steps = epochs * 2_000
    assert job["progress"]["total_steps"] == final_steps + 5 * epochs * 1_600
    deadline = time.monotonic() + 60
    while True:
        now = trainer.get(f"/jobs/{job['id']}").json()
        assert now["status"] == "running" or now["status"] == "queued", now
        if now["progress"]["steps_done"] > final_steps:
            break  # past the final fit: a fold is running
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    assert trainer.post(f"/jobs/{job['id']}/cancel").status_code == 200
    done = wait_for(trainer, job["id"], FINISHED, timeout=10)
    assert done["status"] == "cancelled", done
    assert trainer.get("/models/kfold-long").status_code == 404
