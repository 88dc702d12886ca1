"""The course's worked example and the synthetic cohort."""

import numpy as np
import pytest

from app.engine import TrainingConfig, fit, predict, risk
from app.engine.linear import contributions
from tests.engine.engine_reference import Cohort, close, direct_gradient, direct_risk, with_ones

COURSE_THETA = (0.0, 0.33, 0.33, 0.33)


def test_course_prediction_for_the_new_pupil() -> None:
    assert predict(COURSE_THETA, [[13, 14, 11]]) == pytest.approx([12.54], abs=1e-12)


def test_step_zero_risk_and_gradient_match_direct_computation(course_rows: Cohort) -> None:
    X, y = course_rows
    result = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=1e-3, init_theta=COURSE_THETA))
    theta0 = np.array(COURSE_THETA)
    assert result.history.step[0] == 0
    assert result.history.train_risk[0] == pytest.approx(direct_risk(theta0, X, y), rel=1e-12)
    assert close(result.history.gradient[0], direct_gradient(theta0, X, y), 1e-12)
    assert result.history.grad_norm[0] == pytest.approx(
        np.linalg.norm(direct_gradient(theta0, X, y))
    )
    assert close(result.history.theta[0], theta0, 1e-15)


def test_one_gd_step_is_theta_minus_learning_rate_times_gradient(course_rows: Cohort) -> None:
    X, y = course_rows
    rate = 1e-3
    result = fit(
        X,
        y,
        TrainingConfig(algorithm="gd", learning_rate=rate, iterations=3, init_theta=COURSE_THETA),
    )
    theta = np.array(COURSE_THETA)
    for step in range(1, 4):
        theta = theta - rate * direct_gradient(theta, X, y)
        assert close(result.history.theta[step], theta, 1e-12)
        assert result.history.train_risk[step] == pytest.approx(direct_risk(theta, X, y), rel=1e-12)


def test_closed_form_matches_least_squares(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X, y, TrainingConfig(algorithm="closed_form"))
    expected = np.linalg.lstsq(with_ones(X), y, rcond=None)[0]
    assert close(result.theta, expected, 1e-10)
    assert close(result.theta_star, expected, 1e-10)
    assert result.metrics.risk_gap == 0.0
    assert len(result.history) == 1


def test_cohort_weights_are_recovered(cohort: Cohort) -> None:
    X, y = cohort
    theta = fit(X, y, TrainingConfig(algorithm="closed_form")).theta
    assert theta[1:] == pytest.approx([0.5, 0.5, 0.0], abs=0.1)


def test_gd_converges_to_closed_form(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(
        X, y, TrainingConfig(algorithm="gd", learning_rate=0.5, iterations=500, standardize=True)
    )
    assert result.metrics.theta_distance < 1e-8
    assert result.metrics.risk_gap < 1e-12
    assert close(result.theta, result.theta_star, 1e-8)


def test_gd_in_grade_units_decreases_the_risk_monotonically(cohort: Cohort) -> None:
    X, y = cohort
    bound = fit(X, y, TrainingConfig(algorithm="closed_form")).max_stable_learning_rate
    result = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=0.9 * bound, iterations=1000))
    risks = result.history.train_risk
    assert np.all(np.diff(risks) <= 1e-12 * risks[:-1])
    assert result.metrics.risk_gap < 1e-3 * (risks[0] - risks[-1])


def test_course_sgd_approaches_closed_form(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X, y, TrainingConfig(algorithm="sgd", learning_rate=1e-4, epochs=200))
    first_gap = result.history.train_risk[0] - risk(result.theta_star, X, y)
    assert result.metrics.n_steps == 200 * 20
    assert result.metrics.risk_gap < 1e-2 * first_gap
    assert result.metrics.train_mse == pytest.approx(result.history.train_risk[-1], rel=1e-9)


def test_shuffled_standardized_sgd_approaches_closed_form(cohort: Cohort) -> None:
    X, y = cohort
    config = TrainingConfig(
        algorithm="sgd", learning_rate=0.01, epochs=100, shuffle=True, standardize=True, seed=3
    )
    result = fit(X, y, config)
    assert result.metrics.theta_distance < 0.05
    assert result.metrics.risk_gap < 1e-3


@pytest.mark.parametrize("p", [0, 1, 3, 7, 8, 12])
def test_contributions_add_the_terms_one_after_the_other_then_w0(p: int) -> None:
    rng = np.random.default_rng(p)
    X = rng.uniform(0, 20, size=(500, p))
    theta = rng.normal(size=p + 1)
    raw, terms = contributions(theta, X)
    assert np.array_equal(terms, X * theta[1:])
    for i in range(X.shape[0]):
        total = 0.0 if p == 0 else float(terms[i, 0])
        for j in range(1, p):
            total += float(terms[i, j])
        assert raw[i] == total + theta[0]
    if p < 8:
        # numpy's own reduction takes the same order below 8 terms (pairwise from 8 on).
        assert np.array_equal(raw, terms.sum(axis=1) + theta[0])
