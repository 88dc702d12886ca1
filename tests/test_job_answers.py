"""What a job says about itself once it ended: the last epoch it reached, and only the
options its algorithm used."""

from typing import Any

import httpx
import pytest

from tests.test_jobs import submit, upload_example, wait_for


@pytest.mark.parametrize(
    ("params", "epoch"),
    [
        ({"algorithm": "sgd"}, 5),  # the course's 5 epochs of batches of 10
        ({"algorithm": "sgd", "epochs": 3, "batch_size": 50}, 3),
        ({"algorithm": "gd", "iterations": 40}, 40),  # gd: every step is an epoch
        ({"algorithm": "closed_form"}, 0),
    ],
)
def test_a_finished_job_shows_its_last_epoch(
    trainer: httpx.Client, params: dict[str, Any], epoch: int
) -> None:
    cohort = upload_example(trainer)
    job = wait_for(trainer, submit(trainer, cohort_id=cohort["id"], **params)["id"])
    assert job["status"] == "succeeded"
    assert job["progress"]["epoch"] == epoch
    listed = trainer.get("/jobs").json()["data"]
    assert next(j for j in listed if j["id"] == job["id"])["progress"]["epoch"] == epoch


@pytest.mark.parametrize(
    ("algorithm", "shown", "not_shown"),
    [
        ("sgd", {"epochs", "batch_size", "shuffle", "learning_rate"}, {"iterations"}),
        ("gd", {"iterations", "learning_rate"}, {"epochs", "batch_size", "shuffle"}),
        (
            "closed_form",
            {"l2", "standardize", "validation_fraction"},
            {"learning_rate", "iterations", "epochs", "batch_size", "init_theta", "patience"},
        ),
    ],
)
def test_hyperparameters_are_those_the_algorithm_used(
    trainer: httpx.Client, algorithm: str, shown: set[str], not_shown: set[str]
) -> None:
    cohort = upload_example(trainer)
    job = wait_for(trainer, submit(trainer, cohort_id=cohort["id"], algorithm=algorithm)["id"])
    assert job["status"] == "succeeded"
    for answer in (job, trainer.get(f"/models/concours/versions/{job['model_version']}").json()):
        hyperparameters = set(answer["hyperparameters"])
        assert shown <= hyperparameters, answer["hyperparameters"]
        assert not (not_shown & hyperparameters), answer["hyperparameters"]
        assert answer["hyperparameters"]["algorithm"] == algorithm
