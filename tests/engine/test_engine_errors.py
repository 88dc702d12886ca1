"""Divergence, degenerate data and bad options give typed errors, never NaN or a crash."""

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import ArrayLike

from app.engine import (
    DegenerateDataError,
    DivergenceError,
    EngineError,
    History,
    InvalidConfigError,
    TrainingConfig,
    fit,
    max_stable_learning_rate,
    predict,
    risk,
    split_holdout,
)
from app.engine.config import Algorithm
from tests.engine.engine_reference import Cohort, close, with_ones

NAMES = ("maths", "info", "français")


def test_max_stable_learning_rate_is_one_over_the_largest_eigenvalue(cohort: Cohort) -> None:
    X, _ = cohort
    design = with_ones(X)
    expected = 1.0 / np.linalg.eigvalsh(design.T @ design / len(X))[-1]
    assert max_stable_learning_rate(X) == pytest.approx(expected, rel=1e-12)
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    ridge = with_ones(z).T @ with_ones(z) / len(X) + 0.5 * np.diag([0.0, 1, 1, 1])
    assert max_stable_learning_rate(X, standardize=True, l2=0.5) == pytest.approx(
        1.0 / np.linalg.eigvalsh(ridge)[-1], rel=1e-12
    )


def test_gd_just_below_the_bound_converges_and_just_above_diverges(cohort: Cohort) -> None:
    X, y = cohort
    bound = max_stable_learning_rate(X)
    stable = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=0.95 * bound, iterations=3000))
    assert np.isfinite(stable.theta).all()
    with pytest.raises(DivergenceError):
        fit(X, y, TrainingConfig(algorithm="gd", learning_rate=1.05 * bound, iterations=3000))


@pytest.mark.parametrize("algorithm", ["gd", "sgd"])
def test_divergence_is_a_sentence_with_step_and_bound(cohort: Cohort, algorithm: Algorithm) -> None:
    X, y = cohort
    chunks: list[History] = []
    with pytest.raises(DivergenceError) as diverged:
        fit(X, y, TrainingConfig(algorithm=algorithm, learning_rate=0.5), on_history=chunks.append)
    error = diverged.value
    bound = max_stable_learning_rate(X)
    assert error.max_stable_learning_rate == pytest.approx(bound)
    assert error.learning_rate == 0.5
    message = str(error)
    assert message.startswith(f"training diverged at step {error.step}: ")
    assert "learning_rate=0.5 is too large for these data" in message
    assert f"use at most {math.floor(bound * 1e5) / 1e5:.3g} for gd" in message
    assert error.step >= 1
    # Whatever was reported before the blow-up is finite and stops before the bad step.
    history = History.concatenate(chunks)
    assert np.isfinite(history.theta).all()
    assert np.isfinite(history.train_risk).all()
    assert history.step[-1] < error.step


def test_overflow_is_reported_as_infinite_risk(
    cohort: Cohort, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = cohort
    config = TrainingConfig(algorithm="gd", learning_rate=1.0, iterations=1000)
    # Without the explosion threshold, only overflow can stop the run.
    monkeypatch.setattr("app.engine.training.DIVERGENCE_FACTOR", math.inf)
    with pytest.raises(DivergenceError, match="the risk became infinite") as diverged:
        fit(X, y, config)
    assert diverged.value.step > 1


def test_standardized_divergence_quotes_the_standardized_bound(cohort: Cohort) -> None:
    X, y = cohort
    with pytest.raises(DivergenceError, match=r"\(standardized features\)") as diverged:
        fit(X, y, TrainingConfig(algorithm="gd", learning_rate=5.0, standardize=True))
    assert diverged.value.max_stable_learning_rate == pytest.approx(
        max_stable_learning_rate(X, standardize=True)
    )


def test_constant_column_with_standardize_names_the_feature(cohort: Cohort) -> None:
    X, y = cohort
    X = X.copy()
    X[:, 1] = 12.0
    with pytest.raises(DegenerateDataError, match=r"feature 1 \('info'\) is constant") as error:
        fit(X, y, TrainingConfig(standardize=True), feature_names=NAMES)
    assert error.value.feature == 1
    # Without standardize it is only collinear with the intercept: a finite fit.
    result = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=1e-3, iterations=200))
    assert np.isfinite(result.theta).all()


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        ([[1.0, 2.0]], [3.0], "at least 2 pupils"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "2-D array"),
        (np.zeros((3, 0)), [1.0, 2.0, 3.0], "at least one column"),
        ([[1.0], [2.0], [3.0]], [1.0, 2.0], "one value per row"),
        ([[1.0], [2.0], [3.0]], [[1.0], [2.0], [3.0]], "1-D array"),
        ([["a"], ["b"]], [1.0, 2.0], "X must be numeric"),
        ([[1.0, 2.0], [3.0, math.nan]], [1.0, 2.0], r"row 1, feature 1 \('info'\)"),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0, math.inf], "y has a non-finite value"),
    ],
)
def test_malformed_data_is_a_degenerate_data_error(
    X: ArrayLike, y: ArrayLike, message: str
) -> None:
    with pytest.raises(DegenerateDataError, match=message) as error:
        fit(
            X,
            y,
            TrainingConfig(),
            feature_names=None if np.ndim(X) != 2 else NAMES[: np.shape(X)[1]],
        )
    assert isinstance(error.value, ValueError)
    assert isinstance(error.value, EngineError)


def test_feature_names_must_match_the_columns(cohort: Cohort) -> None:
    X, y = cohort
    with pytest.raises(DegenerateDataError, match="2 feature names for 3 columns"):
        fit(X, y, TrainingConfig(), feature_names=NAMES[:2])


@pytest.mark.parametrize("algorithm", ["closed_form", "gd", "sgd"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_fewer_pupils_than_parameters_still_fit(algorithm: Algorithm, n: int) -> None:
    rng = np.random.default_rng(n)
    X = rng.uniform(0, 20, size=(n, 3))
    y = rng.uniform(0, 20, size=n)
    result = fit(X, y, TrainingConfig(algorithm=algorithm, learning_rate=1e-4))
    assert np.isfinite(result.theta).all()
    assert np.isfinite(result.theta_star).all()
    # Minimum-norm interpolation, as lstsq computes it.
    expected = np.linalg.lstsq(with_ones(X), y, rcond=None)[0]
    assert close(result.theta_star, expected, 1e-8)
    assert result.metrics.residual_std is None


def test_collinear_features_give_the_minimum_norm_solution(cohort: Cohort) -> None:
    X, y = cohort
    X = np.column_stack([X, X[:, 0] + X[:, 1]])
    result = fit(X, y, TrainingConfig(algorithm="closed_form"))
    expected = np.linalg.lstsq(with_ones(X), y, rcond=None)[0]
    assert close(result.theta, expected, 1e-8)
    # gd from zeros stays in the row space, so it heads to the minimum-norm solution of the
    # space it runs in (z-scores here, where it converges fast).
    z_optimum = fit(X, y, TrainingConfig(algorithm="closed_form", standardize=True))
    rate = 0.9 * z_optimum.max_stable_learning_rate
    gd = fit(X, y, TrainingConfig(algorithm="gd", learning_rate=rate, standardize=True))
    assert close(gd.theta_star, z_optimum.theta, 1e-12)
    assert gd.metrics.theta_distance < 1e-8


def test_ridge_leaves_the_intercept_unpenalised(cohort: Cohort) -> None:
    X, y = cohort
    l2 = 2.0
    result = fit(X, y, TrainingConfig(algorithm="closed_form", l2=l2))
    design = with_ones(X)
    penalty = np.diag([0.0, 1.0, 1.0, 1.0])
    expected = np.linalg.solve(design.T @ design / len(y) + l2 * penalty, design.T @ y / len(y))
    assert close(result.theta, expected, 1e-9)
    assert result.metrics.residual_std is not None


def test_standardized_ridge_penalises_z_scored_weights(cohort: Cohort) -> None:
    X, y = cohort
    l2 = 0.3
    result = fit(X, y, TrainingConfig(algorithm="closed_form", l2=l2, standardize=True))
    mean, scale = X.mean(axis=0), X.std(axis=0)
    design = with_ones((X - mean) / scale)
    fitted = np.linalg.solve(
        design.T @ design / len(y) + l2 * np.diag([0.0, 1, 1, 1]), design.T @ y / len(y)
    )
    weights = fitted[1:] / scale
    assert close(result.theta, np.concatenate([[fitted[0] - weights @ mean], weights]), 1e-9)
    # Θ comes back in grade units: predictions need no scaler.
    assert close(predict(result.theta, X), design @ fitted, 1e-9)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("algorithm", "adam"),
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("learning_rate", math.inf),
        ("learning_rate", math.nan),
        ("iterations", 0),
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", 0),
        ("record_every", 0),
        ("seed", -1),
        ("l2", -0.1),
        ("l2", math.nan),
        ("validation_fraction", 1.0),
        ("validation_fraction", -0.1),
        ("patience", 0),
        ("patience", 3),
        ("init_theta", (0.0, 0.33, 0.33)),
        ("init_theta", (0.0, 0.33, math.nan, 0.33)),
    ],
)
def test_invalid_options_name_the_parameter(cohort: Cohort, field: str, value: Any) -> None:
    X, y = cohort
    with pytest.raises(InvalidConfigError) as error:
        fit(X, y, TrainingConfig(**{field: value}))
    assert error.value.parameter == field
    assert str(error.value).startswith(f"{field}: ")
    assert isinstance(error.value, ValueError)


def test_holdout_split_is_seeded_disjoint_and_complete() -> None:
    train, val = split_holdout(50, 0.2, seed=4)
    assert len(val) == 10
    assert len(train) == 40
    assert sorted([*train, *val]) == list(range(50))
    _, again_val = split_holdout(50, 0.2, seed=4)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(val, split_holdout(50, 0.2, seed=5)[1])
    assert len(split_holdout(50, 0.0, seed=4)[1]) == 0


def test_holdout_leaving_one_training_row_is_degenerate() -> None:
    with pytest.raises(DegenerateDataError, match="keeps 1 of 3 rows"):
        fit(np.arange(6.0).reshape(3, 2), np.arange(3.0), TrainingConfig(validation_fraction=0.6))


def test_metrics_of_a_fit_with_holdout(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X, y, TrainingConfig(algorithm="closed_form", validation_fraction=0.25, seed=9))
    train, val = split_holdout(len(y), 0.25, seed=9)
    metrics = result.metrics
    assert (metrics.n_train, metrics.n_val) == (150, 50)
    residuals = predict(result.theta, X[train]) - y[train]
    assert metrics.train_mse == pytest.approx(risk(result.theta, X[train], y[train]))
    assert metrics.train_rmse == pytest.approx(math.sqrt(metrics.train_mse))
    assert metrics.train_mae == pytest.approx(np.abs(residuals).mean())
    assert metrics.train_r2 == pytest.approx(
        1 - residuals @ residuals / np.sum((y[train] - y[train].mean()) ** 2)
    )
    assert metrics.residual_std == pytest.approx(math.sqrt(residuals @ residuals / (150 - 4)))
    assert metrics.val_mse == pytest.approx(risk(result.theta, X[val], y[val]))
    assert metrics.val_mae == pytest.approx(np.abs(predict(result.theta, X[val]) - y[val]).mean())
    assert metrics.val_r2 is not None
    assert metrics.val_r2 > 0.5


def test_constant_target_has_no_r2(cohort: Cohort) -> None:
    X, _ = cohort
    result = fit(X, np.full(len(X), 10.0), TrainingConfig(algorithm="closed_form"))
    assert result.metrics.train_r2 is None
    assert result.metrics.val_mse is None
    assert predict(result.theta, X) == pytest.approx(np.full(len(X), 10.0))
