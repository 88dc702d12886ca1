"""k-fold cross-validation in the engine against plain numpy refits, fold by fold."""

import numpy as np
import pytest

from app.engine import (
    InvalidConfigError,
    Progress,
    TrainingCancelled,
    TrainingConfig,
    check_folds,
    cross_validate,
    fit,
    fold_steps,
    kfold_indices,
)


def _cohort(n: int = 47, p: int = 3, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 20, size=(n, p))
    y = 1.5 + X @ np.linspace(0.2, 0.5, p) + rng.normal(0, 1.2, n)
    return X, y


def _training(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = kfold_indices(n, folds, seed)
    return [(np.setdiff1d(np.arange(n), part), part) for part in parts]


def _rmse(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    residual = y - theta[0] - X @ theta[1:]
    return float(np.sqrt(np.mean(residual**2)))


def test_folds_partition_the_rows_and_follow_the_seed() -> None:
    parts = kfold_indices(23, 5, 3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(23))
    assert sorted(len(p) for p in parts) == [4, 4, 5, 5, 5]
    assert all((a == b).all() for a, b in zip(parts, kfold_indices(23, 5, 3), strict=True))
    assert any((a != b).any() for a, b in zip(parts, kfold_indices(23, 5, 4), strict=True))


@pytest.mark.parametrize("folds", [2, 5, 10, 20])
def test_closed_form_matches_a_least_squares_refit_per_fold(folds: int) -> None:
    X, y = _cohort()
    config = TrainingConfig(algorithm="closed_form", seed=11)
    cv = cross_validate(X, y, config, folds)
    expected = []
    for train, val in _training(len(y), folds, 11):
        design = np.column_stack([np.ones(train.size), X[train]])
        theta = np.linalg.lstsq(design, y[train], rcond=None)[0]
        expected.append(_rmse(theta, X[val], y[val]))
    assert [f.fold for f in cv.folds] == list(range(1, folds + 1))
    assert [f.n_validation for f in cv.folds] == [v.size for _, v in _training(len(y), folds, 11)]
    np.testing.assert_allclose([f.rmse for f in cv.folds], expected, rtol=1e-9, atol=0)
    assert cv.cv_rmse == pytest.approx(np.mean(expected), rel=1e-9)
    assert cv.cv_rmse_std == pytest.approx(np.std(expected), rel=1e-7)


def test_closed_form_ridge_on_standardized_grades_matches_an_augmented_refit() -> None:
    X, y = _cohort(n=40, p=4)
    l2 = 0.3
    config = TrainingConfig(algorithm="closed_form", standardize=True, l2=l2, seed=2)
    cv = cross_validate(X, y, config, 4)
    expected = []
    for train, val in _training(len(y), 4, 2):
        Xt, yt = X[train], y[train]
        mean, scale = Xt.mean(axis=0), Xt.std(axis=0)
        Z = (Xt - mean) / scale
        # (1/n)‖Zθ − y‖² + l2‖a‖² as one least-squares problem: extra rows √(n·l2)·I.
        design = np.vstack(
            [
                np.column_stack([np.ones(train.size), Z]),
                np.column_stack([np.zeros(4), np.sqrt(train.size * l2) * np.eye(4)]),
            ]
        )
        a = np.linalg.lstsq(design, np.concatenate([yt, np.zeros(4)]), rcond=None)[0]
        w = a[1:] / scale
        theta = np.concatenate([[a[0] - w @ mean], w])
        expected.append(_rmse(theta, X[val], y[val]))
    np.testing.assert_allclose([f.rmse for f in cv.folds], expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("standardize", [False, True])
def test_gd_matches_a_plain_loop_per_fold(standardize: bool) -> None:
    X, y = _cohort(n=30, p=2)
    config = TrainingConfig(
        algorithm="gd",
        learning_rate=0.1 if standardize else 1e-3,
        iterations=300,
        standardize=standardize,
        l2=0.05,
        init_theta=(0.5, 0.3, 0.3),
        seed=5,
    )
    cv = cross_validate(X, y, config, 3)
    expected = []
    for train, val in _training(len(y), 3, 5):
        Xt, yt = X[train], y[train]
        mean, scale = (Xt.mean(axis=0), Xt.std(axis=0)) if standardize else (0.0, 1.0)
        F = np.column_stack([np.ones(train.size), (Xt - mean) / scale])
        w0 = np.array(config.init_theta)
        theta = np.concatenate([[w0[0] + w0[1:] @ (mean * np.ones(2))], w0[1:] * scale])
        for _ in range(config.iterations):
            gradient = 2.0 / train.size * F.T @ (F @ theta - yt)
            gradient[1:] += 2.0 * config.l2 * theta[1:]
            theta = theta - config.learning_rate * gradient
        w = theta[1:] / scale
        original = np.concatenate([[theta[0] - w @ (mean * np.ones(2))], w])
        expected.append(_rmse(original, X[val], y[val]))
    np.testing.assert_allclose([f.rmse for f in cv.folds], expected, rtol=1e-9, atol=0)


def test_gd_that_diverges_on_a_fold_says_so() -> None:
    from app.engine import DivergenceError

    X, y = _cohort(n=20, p=2)
    with pytest.raises(DivergenceError, match="learning_rate"):
        cross_validate(X, y, TrainingConfig(algorithm="gd", learning_rate=5.0), 4)


@pytest.mark.parametrize(
    ("n", "folds"), [(10, 1), (10, 21), (4, 5), (2, 2), (3, 0), (10, True), (10, 2.5)]
)
def test_bad_folds_name_the_option(n: int, folds: object) -> None:
    with pytest.raises(InvalidConfigError) as info:
        check_folds(n, folds)  # type: ignore[arg-type]
    assert info.value.parameter == "folds"


def test_sgd_fits_each_fold_on_its_training_rows() -> None:
    X, y = _cohort(n=33, p=2)
    config = TrainingConfig(
        algorithm="sgd", learning_rate=1e-3, epochs=4, batch_size=4, shuffle=True, seed=8
    )
    reports: list[Progress] = []
    cv = cross_validate(X, y, config, 3, on_progress=reports.append)
    expected = []
    for train, val in _training(len(y), 3, 8):
        theta = fit(X[train], y[train], config).theta
        expected.append(_rmse(theta, X[val], y[val]))
    np.testing.assert_allclose([f.rmse for f in cv.folds], expected, rtol=1e-12)
    # Each fold trains on 22 pupils: 6 batches of 4 a epoch, 4 epochs, 3 folds.
    assert cv.n_steps == fold_steps(33, config, 3) == 3 * 4 * 6
    done = [r.steps_done for r in reports]
    assert done == sorted(done)
    assert done[-1] == cv.n_steps
    assert {r.total_steps for r in reports} == {cv.n_steps}


def test_sgd_folds_see_a_cancellation_and_count_every_fold() -> None:
    X, y = _cohort(n=30, p=2)
    config = TrainingConfig(algorithm="sgd", epochs=3, batch_size=1)
    reports: list[Progress] = []

    def stop() -> bool:  # once the first fold has finished
        return bool(reports) and reports[-1].steps_done >= 3 * 20

    with pytest.raises(TrainingCancelled) as info:
        cross_validate(X, y, config, 3, on_progress=reports.append, should_stop=stop)
    assert info.value.total_steps == 3 * 3 * 20
    assert 3 * 20 <= info.value.steps_done < 3 * 3 * 20
