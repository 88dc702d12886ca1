"""Whether a finished job activated its version and why, and the promotion gate on a later
cohort, through real HTTP."""

from typing import Any

import httpx
import numpy as np
import pytest

from app.db.models import Role
from tests.conftest import Tenant
from tests.test_evaluations import FEATURES, school_year, upload
from tests.test_jobs import submit, wait_for

BAD_THETA = [10.0, 0.0, 0.0, 0.0]


def train(client: httpx.Client, **body: Any) -> dict[str, Any]:
    job = wait_for(client, submit(client, model="concours", **body)["id"])
    assert job["status"] == "succeeded", job
    return job


def rmse(theta: list[float], X: np.ndarray, y: np.ndarray) -> float:
    predicted = np.clip(X @ np.asarray(theta[1:]) + theta[0], 0, 20)
    return float(np.sqrt(np.mean((predicted - y) ** 2)))


@pytest.fixture
def cohorts(trainer: httpx.Client) -> dict[str, Any]:
    X_train, y_train = school_year(1, 80, 2, 18)
    X, y = school_year(2, 60)
    return {
        "train": upload(trainer, "promo 2019-2020", X_train, y_train),
        "later": upload(trainer, "promo 2020-2021", X, y),
        "X": X,
        "y": y,
    }


def test_every_rule_says_whether_it_activated_and_why(
    trainer: httpx.Client, cohorts: dict[str, Any]
) -> None:
    cohort_id = cohorts["train"]["id"]
    first = train(trainer, cohort_id=cohort_id, algorithm="closed_form", validation_fraction=0.25)
    assert first["activation"] == {
        "activated": True,
        "rule": "if_better",
        "compared_with_version": None,
        "figures": {},
        "reason": "first version of the model",
    }
    # One gd step from Θ = 0 is far worse than least squares on the same hold-out.
    worse = train(
        trainer,
        cohort_id=cohort_id,
        algorithm="gd",
        iterations=1,
        learning_rate=1e-4,
        validation_fraction=0.25,
    )
    outcome = worse["activation"]
    assert outcome["activated"] is False
    assert outcome["compared_with_version"] == 1
    figures = outcome["figures"]
    assert figures["metric"] == "risk"
    assert figures["rows"] == "validation"
    assert figures["new"] > figures["active"]
    assert "not activated" in outcome["reason"]
    version = trainer.get(f"/models/concours/versions/{worse['model_version']}").json()
    assert version["activation"] == outcome
    assert version["active"] is False
    assert trainer.get("/models/concours").json()["active_version"] == 1
    never = train(trainer, cohort_id=cohort_id, algorithm="closed_form", activate="never")
    assert never["activation"]["activated"] is False
    assert never["activation"]["rule"] == "never"
    always = train(trainer, cohort_id=cohort_id, algorithm="gd", iterations=1, activate="always")
    assert always["activation"]["activated"] is True
    assert trainer.get("/models/concours").json()["active_version"] == always["model_version"]


def test_the_gate_promotes_a_better_version_and_keeps_a_worse_one_out(
    trainer: httpx.Client, cohorts: dict[str, Any]
) -> None:
    X, y, later = cohorts["X"], cohorts["y"], cohorts["later"]
    response = trainer.post(
        "/models/concours/versions",
        json={"features": FEATURES, "target": "concours", "theta": BAD_THETA},
    )
    assert response.status_code == 201, response.text
    assert trainer.put("/models/concours/active", json={"version": 1}).status_code == 200
    gated = {"cohort_id": cohorts["train"]["id"], "gate_cohort_id": later["id"]}

    better = train(trainer, algorithm="closed_form", **gated)
    assert better["gate_cohort_id"] == later["id"]
    outcome = better["activation"]
    new_theta = trainer.get("/models/concours/versions/2").json()["theta"]
    assert outcome["activated"] is True
    assert outcome["rule"] == "gate"
    assert outcome["compared_with_version"] == 1
    figures = outcome["figures"]
    assert figures["cohort_id"] == later["id"]
    assert figures["cohort_name"] == "promo 2020-2021"
    assert figures["new"] == pytest.approx(rmse(new_theta, X, y), rel=1e-9)
    assert figures["active"] == pytest.approx(rmse(BAD_THETA, X, y), rel=1e-9)
    assert figures["new"] < figures["active"]
    history = trainer.get("/models/concours/activations").json()["data"]
    latest = max(history, key=lambda a: a["created_at"])
    assert latest["to_version"] == 2
    assert latest["from_version"] == 1
    assert "promo 2020-2021" in latest["reason"]
    assert f"{figures['new']:.6g}" in latest["reason"]
    assert f"{figures['active']:.6g}" in latest["reason"]
    # Both versions' evaluations are stored, as if asked for through the API.
    board = trainer.get("/models/concours/evaluations", params={"cohort_id": later["id"]})
    assert board.status_code == 200, board.text
    assert [e["version"] for e in board.json()["data"]] == [2, 1]

    worse = train(trainer, algorithm="gd", iterations=1, learning_rate=1e-4, **gated)
    outcome = worse["activation"]
    assert outcome["activated"] is False
    assert outcome["compared_with_version"] == 2
    assert outcome["figures"]["new"] > outcome["figures"]["active"]
    # The active version's evaluation there is reused, not computed again.
    assert outcome["figures"]["active_evaluation_id"] == figures["new_evaluation_id"]
    assert "promo 2020-2021" in outcome["reason"]
    assert "not activated" in outcome["reason"]
    assert trainer.get("/models/concours").json()["active_version"] == 2
    assert len(trainer.get("/models/concours/activations").json()["data"]) == len(history)


def test_a_bad_gate_is_refused_naming_it_and_stores_nothing(
    trainer: httpx.Client, other_tenant: Tenant, cohorts: dict[str, Any]
) -> None:
    cohort_id = cohorts["train"]["id"]
    with other_tenant.client(Role.trainer) as other:
        foreign = upload(other, "their promo", cohorts["X"], cohorts["y"])
    X, y = school_year(3, 10)
    no_target = upload(trainer, "sans concours", X, y, target="bac")
    cases: list[tuple[dict[str, Any], int]] = [
        ({"gate_cohort_id": cohorts["later"]["id"], "activate": "always"}, 422),
        ({"gate_cohort_id": cohorts["later"]["id"], "activate": "never"}, 422),
        ({"gate_cohort_id": cohort_id}, 422),
        ({"gate_cohort_id": foreign["id"]}, 404),
        ({"gate_cohort_id": "00000000-0000-4000-8000-000000000000"}, 404),
        ({"gate_cohort_id": no_target["id"]}, 422),
    ]
    for extra, status in cases:
        response = trainer.post(
            "/jobs", json={"cohort_id": cohort_id, "algorithm": "closed_form", **extra}
        )
        assert response.status_code == status, (extra, response.text)
        assert ["body", "gate_cohort_id"] in [e["loc"] for e in response.json()["errors"]]
    assert trainer.get("/jobs").json()["count"] == 0
    assert trainer.get("/models").json()["count"] == 0
