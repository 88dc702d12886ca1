"""The numbers a school reads, through the API: NIST's certified coefficients, the OLS
prediction interval, the condition number and the warning about raw ill-conditioned data."""

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from app.engine import TrainingConfig, fit
from tests.nist_strd import PROBLEMS, Problem, correct_digits
from tests.test_jobs import submit, upload_example, wait_for


def upload(
    client: httpx.Client,
    name: str,
    features: list[str],
    target: str,
    X: np.ndarray,
    y: np.ndarray,
    grade_range: tuple[float, float],
) -> dict[str, Any]:
    students = [
        {**dict(zip(features, row, strict=True)), target: value}
        for row, value in zip(X.tolist(), y.tolist(), strict=True)
    ]
    body = {
        "name": name,
        "features": features,
        "target": target,
        "grade_range": list(grade_range),
        "students": students,
    }
    response = client.post("/cohorts", json=body)
    assert response.status_code == 201, response.text
    cohort: dict[str, Any] = response.json()
    return cohort


def train(
    client: httpx.Client, cohort: dict[str, Any], **params: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    job = submit(client, cohort_id=cohort["id"], model="nist", **params)
    job = wait_for(client, job["id"])
    assert job["status"] == "succeeded", job
    response = client.get(f"/models/nist/versions/{job['model_version']}")
    assert response.status_code == 200, response.text
    return job, response.json()


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda make: make.__name__)
def test_nist_certified_coefficients_through_the_api(
    trainer: httpx.Client, problem: Callable[[], Problem], standardize: bool
) -> None:
    """NIST StRD (itl.nist.gov/div898/strd/lls): a closed_form job's version carries every
    certified coefficient to >= 9 significant digits, with and without standardize."""
    data = problem()
    features = [name.lower() for name in data.features]
    cohort = upload(trainer, data.name, features, "y", data.X, data.y, (-1e7, 1e7))
    job, version = train(trainer, cohort, algorithm="closed_form", standardize=standardize)
    digits = correct_digits(np.array(version["theta"]), data.certified)
    assert digits.min() >= 9, f"{data.name}: correct digits per coefficient {digits.round(1)}"
    assert version["metrics"]["condition_number"] > 100
    assert version["interval"] == "ols"
    assert job["warnings"] is None
    assert version["warnings"] is None


def test_predict_interval_is_the_ols_interval_with_leverage(
    trainer: httpx.Client, reader: httpx.Client
) -> None:
    rng = np.random.default_rng(3)
    X = np.round(rng.uniform(0, 20, size=(10, 3)), 2)
    y = np.round(2 + X @ [0.3, 0.3, 0.3] + rng.normal(0, 1.5, size=10), 2)
    features = ["maths", "info", "francais"]
    cohort = upload(trainer, "small", features, "concours", X, y, (-50, 50))
    _, version = train(trainer, cohort, algorithm="closed_form", activate="always")
    assert version["interval"] == "ols"
    assert version["residual_std"] is None  # the interval's s is the design's

    expected = fit(X, y, TrainingConfig(algorithm="closed_form"))
    assert expected.interval is not None
    new = np.array([[10.0, 10.0, 10.0], [0.0, 20.0, 0.0], [20.0, 20.0, 20.0]])
    students = [dict(zip(features, row, strict=True)) for row in new.tolist()]
    body = reader.post("/predict", json={"model": "nist", "students": students}).json()
    half = expected.interval.half_width(new)
    for pupil, raw, width in zip(
        body["predictions"], expected.theta[0] + new @ expected.theta[1:], half, strict=True
    ):
        low, high = pupil["interval"]
        assert pupil["raw"] == pytest.approx(raw, abs=1e-5)
        assert (high - low) / 2 == pytest.approx(width, abs=2e-6)
    # Far from the cohort's centre the interval widens: Θ's own uncertainty is in it.
    widths = [(p["interval"][1] - p["interval"][0]) / 2 for p in body["predictions"]]
    assert widths[0] < widths[1]


def test_gd_on_raw_ill_conditioned_grades_warns_and_gives_no_interval(
    trainer: httpx.Client,
) -> None:
    cohort = upload_example(trainer)
    job, version = train(trainer, cohort, algorithm="gd", learning_rate=0.002, iterations=1000)
    (warning,) = job["warnings"]
    assert "standardize=true" in warning
    assert "condition number" in warning
    assert version["warnings"] == job["warnings"]
    # Θ is far from the least-squares one, so an OLS interval around it would mislead.
    assert version["interval"] is None
    assert version["metrics"]["condition_number"] > 1

    job, version = train(
        trainer, cohort, algorithm="gd", learning_rate=0.2, iterations=1000, standardize=True
    )
    assert job["warnings"] is None
    assert version["interval"] == "ols"  # converged: the least-squares interval applies


def test_ridge_versions_have_no_interval(trainer: httpx.Client) -> None:
    cohort = upload_example(trainer)
    _, version = train(trainer, cohort, algorithm="closed_form", l2=0.5)
    assert version["interval"] is None
    assert version["residual_std"] is None


@pytest.mark.slow
def test_interval_coverage_through_the_api(trainer: httpx.Client, reader: httpx.Client) -> None:
    """The issue's measurement, redone: cohorts of 10 pupils with 3 grades, Gaussian noise, new
    pupils over the whole grade range, every interval from /predict (it gave 77.8% before).
    bench/coverage.py measures 20,000 predictions per cohort size through the same engine."""
    rng = np.random.default_rng(10)
    features = ["maths", "info", "francais"]
    theta = np.array([2.0, 0.3, 0.3, 0.3])
    covered = total = 0
    for cohort_index in range(60):
        X = rng.uniform(0, 20, size=(10, 3))
        y = theta[0] + X @ theta[1:] + rng.normal(0, 1.5, size=10)
        cohort = upload(trainer, f"c{cohort_index}", features, "concours", X, y, (-100, 100))
        train(trainer, cohort, algorithm="closed_form", activate="always")
        new = rng.uniform(0, 20, size=(80, 3))
        truth = theta[0] + new @ theta[1:] + rng.normal(0, 1.5, size=80)
        students = [dict(zip(features, row, strict=True)) for row in new.tolist()]
        response = reader.post("/predict", json={"model": "nist", "students": students})
        assert response.status_code == 200, response.text
        for pupil, grade in zip(response.json()["predictions"], truth, strict=True):
            low, high = pupil["interval"]
            covered += int(low <= grade <= high)
            total += 1
    assert 0.935 <= covered / total <= 0.965, f"coverage {covered / total:.2%} of {total}"
