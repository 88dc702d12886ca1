"""The OLS interval's ingredients, what a fit reports about conditioning, and thinning."""

import json

import numpy as np
import pytest

from app.engine import IntervalDesign, TrainingConfig, fit, interval_half_width, student_t_975, thin
from tests.engine.engine_reference import Cohort, with_ones


def test_leverage_is_the_textbook_quadratic_form(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X, y, TrainingConfig(algorithm="closed_form"))
    assert result.interval is not None
    new = np.array([[0.0, 0.0, 0.0], [11.0, 11.0, 11.0], [20.0, 3.0, 17.5]])
    design = with_ones(X)
    expected = np.einsum(
        "ij,jk,ik->i", with_ones(new), np.linalg.inv(design.T @ design), with_ones(new)
    )
    assert np.allclose(result.interval.leverage(new), expected, rtol=1e-10)
    s = result.metrics.residual_std
    assert s is not None
    t = student_t_975(len(y) - 4)
    assert np.allclose(result.interval.half_width(new), t * s * np.sqrt(1 + expected), rtol=1e-10)


def test_interval_design_survives_json_exactly(cohort: Cohort) -> None:
    X, y = cohort
    design = fit(X, y, TrainingConfig(algorithm="closed_form", standardize=True)).interval
    assert design is not None
    restored = IntervalDesign.from_json(json.loads(json.dumps(design.to_json())))
    new = np.array([[3.0, 19.0, 7.25]])
    assert np.array_equal(restored.half_width(new), design.half_width(new))


def test_which_interval_each_kind_of_version_gets(cohort: Cohort) -> None:
    X, y = cohort
    new = X[:2]
    assert fit(X, y, TrainingConfig(algorithm="closed_form", l2=0.1)).interval is None
    collinear = np.column_stack([X, X[:, 0] - X[:, 1]])
    assert fit(collinear, y, TrainingConfig(algorithm="closed_form")).interval is None
    short = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=1e-3, iterations=100))
    assert short.interval is None
    rate = (
        0.9
        * fit(
            X, y, TrainingConfig(algorithm="gd", standardize=True, iterations=1)
        ).max_stable_learning_rate
    )
    converged = fit(
        X, y, TrainingConfig(algorithm="gd", standardize=True, learning_rate=rate, iterations=2000)
    )
    assert converged.interval is not None
    # Hand-set σ without a design: t·σ (1.96·σ without n_train), Θ taken as exact.
    half = interval_half_width(new, design=None, residual_std=2.0, n_train=None)
    assert half is not None
    assert half == pytest.approx([2 * 1.959964] * 2, abs=1e-6)
    assert interval_half_width(new, design=None, residual_std=None, n_train=10) is None


def test_gd_on_raw_ill_conditioned_grades_warns_with_the_figure(cohort: Cohort) -> None:
    X, y = cohort
    raw = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=1e-3, iterations=1000))
    (warning,) = raw.warnings
    assert "standardize=true" in warning
    assert "condition number" in warning
    assert raw.metrics.theta_distance > 0.1  # the warning is right: Θ is far from Θ*
    many = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=1e-3, iterations=300_000))
    assert many.warnings == ()
    scaled = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=0.1, standardize=True))
    assert scaled.warnings == ()
    assert fit(X, y, TrainingConfig(algorithm="closed_form")).warnings == ()


def test_condition_number_of_the_standardised_design(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X, y, TrainingConfig(algorithm="gd", iterations=1))
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    assert result.metrics.condition_number == pytest.approx(np.linalg.cond(with_ones(z)), rel=1e-9)
    collinear = np.column_stack([X, 2 * X[:, 0]])
    assert (
        fit(collinear, y, TrainingConfig(algorithm="closed_form")).metrics.condition_number
        == np.inf
    )


@pytest.mark.parametrize(
    ("count", "max_points", "expected"),
    [
        (5, None, [0, 1, 2, 3, 4]),
        (5, 10, [0, 1, 2, 3, 4]),
        (5, 1, [4]),
        (5, 3, [0, 2, 4]),
        (101, 2, [0, 100]),
    ],
)
def test_thinning_is_even_and_keeps_both_ends(
    count: int, max_points: int | None, expected: list[int]
) -> None:
    points = np.arange(count, dtype=np.float64)[:, None]
    assert thin(points, max_points)[:, 0].tolist() == expected
