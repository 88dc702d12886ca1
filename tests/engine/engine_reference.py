"""Plain, obviously-correct implementations the engine is checked against (slow on purpose)."""

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.engine import TrainingConfig, split_holdout

FloatArray = NDArray[np.float64]
Cohort = tuple[FloatArray, FloatArray]  # (X, y): grades per pupil, concours grade


def make_cohort(n: int = 200, seed: int = 7) -> Cohort:
    """Pupils with maths, info, français grades in [0, 20]; concours ≈ 0.5 maths + 0.5 info."""
    rng = np.random.default_rng(seed)
    grades = np.clip(rng.normal(11.0, 3.5, size=(n, 3)), 0.0, 20.0)
    concours = 0.5 * grades[:, 0] + 0.5 * grades[:, 1] + rng.normal(0.0, 1.0, size=n)
    return grades, np.clip(concours, 0.0, 20.0)


def with_ones(X: FloatArray) -> FloatArray:
    return np.column_stack([np.ones(X.shape[0]), X])


def direct_risk(theta: FloatArray, X: FloatArray, y: FloatArray) -> float:
    """R(Θ) = (1/n) Σ (h_Θ(xi) − yi)², one pupil at a time as written in the course."""
    total = 0.0
    for xi, yi in zip(X, y, strict=True):
        total += (theta[0] + sum(w * x for w, x in zip(theta[1:], xi, strict=True)) - yi) ** 2
    return total / len(y)


def direct_gradient(theta: FloatArray, X: FloatArray, y: FloatArray) -> FloatArray:
    """∇R = (2/n) Σ (h_Θ(xi) − yi)·(1, xi¹, ..., xiᵖ)."""
    gradient = np.zeros(len(theta))
    for xi, yi in zip(X, y, strict=True):
        residual = theta[0] + float(np.dot(theta[1:], xi)) - yi
        gradient += 2.0 / len(y) * residual * np.concatenate([[1.0], xi])
    return gradient


def sequential_thetas(X: FloatArray, y: FloatArray, config: TrainingConfig) -> FloatArray:
    """Θ after every step 0..T (row k = step k), in grade units, by the textbook loop.

    Same conventions as the engine: rows split by split_holdout, z-scoring with the training
    rows' mean and population std, ridge term l2·Σ_{j≥1} aj² on the fitted (z-space) weights,
    per-epoch order np.random.default_rng((seed, 1, epoch)).permutation(n) when shuffling.
    """
    train_idx, _ = split_holdout(len(y), config.validation_fraction, config.seed)
    X, y = X[train_idx], y[train_idx]
    mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    if config.standardize:
        mean, scale = X.mean(axis=0), X.std(axis=0)
    design = with_ones((X - mean) / scale)
    n, dim = design.shape
    not_intercept = np.ones(dim)
    not_intercept[0] = 0.0

    theta = np.zeros(dim)
    if config.init_theta is not None:
        w = np.asarray(config.init_theta)
        theta = np.concatenate([[w[0] + w[1:] @ mean], w[1:] * scale])
    thetas = [theta]
    rate, l2 = config.learning_rate, config.l2
    if config.algorithm == "gd":
        for _ in range(config.iterations):
            residual = design @ theta - y
            theta = theta - rate * (
                2.0 / n * design.T @ residual + 2.0 * l2 * not_intercept * theta
            )
            thetas.append(theta)
    else:
        for epoch in range(1, config.epochs + 1):
            order = np.arange(n)
            if config.shuffle:
                order = np.random.default_rng((config.seed, 1, epoch)).permutation(n)
            for b in range(0, n, config.batch_size):
                batch = order[b : b + config.batch_size]
                Xb, yb = design[batch], y[batch]
                residual = Xb @ theta - yb
                theta = theta - rate * (
                    2.0 / len(batch) * Xb.T @ residual + 2.0 * l2 * not_intercept * theta
                )
                thetas.append(theta)
    fitted = np.array(thetas)
    weights = fitted[:, 1:] / scale
    return np.column_stack([fitted[:, 0] - weights @ mean, weights])


def close(actual: ArrayLike, expected: ArrayLike, relative: float = 1e-9) -> bool:
    """|a − b| <= relative · max(1, |b|) elementwise: relative for large values, absolute
    near zero where a relative test would demand more digits than the inputs carry."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    return bool(np.all(np.abs(actual - expected) <= relative * np.maximum(1.0, np.abs(expected))))
