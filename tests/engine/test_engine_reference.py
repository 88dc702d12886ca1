"""The vectorised engine against the plain sequential loop, step by recorded step."""

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import TrainingConfig, fit, split_holdout
from app.engine import training as training_module
from app.engine.config import Algorithm
from app.engine.scan import prepare, scan
from tests.engine.engine_reference import (
    FloatArray,
    close,
    direct_risk,
    sequential_thetas,
    with_ones,
)

# A (relative) per-element tolerance of 1e-9 · max(1, |expected|), see engine_reference.close.
RELATIVE = 1e-9


def assert_history_matches_sequential(X: FloatArray, y: FloatArray, config: TrainingConfig) -> None:
    result = fit(X, y, config)
    reference = sequential_thetas(X, y, config)
    history = result.history
    total = len(reference) - 1
    expected_steps = sorted({0, total, *range(config.record_every, total + 1, config.record_every)})
    assert history.step.tolist() == expected_steps
    assert close(history.theta, reference[history.step], RELATIVE)
    assert close(result.theta, reference[-1], RELATIVE)

    train_idx, val_idx = split_holdout(len(y), config.validation_fraction, config.seed)
    for point in range(0, len(history), max(1, len(history) // 5)):
        theta = history.theta[point]
        expected_risk = direct_risk(theta, X[train_idx], y[train_idx])
        assert close(history.train_risk[point], expected_risk, RELATIVE)
        if val_idx.size:
            assert history.val_risk is not None
            expected_val = direct_risk(theta, X[val_idx], y[val_idx])
            assert close(history.val_risk[point], expected_val, RELATIVE)


# (X, y, config, the engine's chunk size)
Problem = tuple[FloatArray, FloatArray, TrainingConfig, int]
ITERATIVE: tuple[Algorithm, ...] = ("gd", "sgd")


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(2, 40))
    p = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.uniform(0.0, 20.0, size=(n, p))
    y = np.clip(X @ rng.uniform(0.0, 1.0, size=p) / p + rng.normal(0.0, 1.0, size=n), 0.0, 20.0)
    standardize = draw(st.booleans())
    l2 = draw(st.sampled_from([0.0, 0.05, 1.5]))
    algorithm = draw(st.sampled_from(ITERATIVE))
    validation_fraction = draw(st.sampled_from([0.0, 0.25])) if n >= 5 else 0.0
    fitted = X
    if standardize:
        train_idx, _ = split_holdout(n, validation_fraction, 0)
        fitted = (X - X[train_idx].mean(axis=0)) / X[train_idx].std(axis=0)
    # Every per-batch map keeps eigenvalues in [0.5, 1] below this rate, for any batch.
    safe_rate = 0.25 / (float(np.max(np.sum(with_ones(fitted) ** 2, axis=1))) + l2)
    init_theta = None
    if draw(st.booleans()):
        init_theta = tuple(float(v) for v in rng.uniform(-1.0, 1.0, size=p + 1))
    config = TrainingConfig(
        algorithm=algorithm,
        learning_rate=safe_rate * draw(st.floats(0.05, 1.0)),
        iterations=draw(st.integers(1, 80)),
        epochs=draw(st.integers(1, 3)),
        batch_size=draw(st.integers(1, n + 2)),
        shuffle=draw(st.booleans()),
        seed=0,
        init_theta=init_theta,
        standardize=standardize,
        l2=l2,
        validation_fraction=validation_fraction,
        record_every=draw(st.integers(1, 7)),
    )
    chunk_steps = draw(st.sampled_from([3, 1 << 16]))
    return X, y, config, chunk_steps


@settings(max_examples=150, deadline=None)
@given(problems())
def test_engine_matches_sequential_loop(problem: Problem) -> None:
    X, y, config, chunk_steps = problem
    with mock.patch.object(training_module, "_CHUNK_STEPS", chunk_steps):
        assert_history_matches_sequential(X, y, config)


def test_long_sgd_run_matches_sequential_loop() -> None:
    # Enough steps for three levels of the blocked scan and several chunks.
    rng = np.random.default_rng(11)
    X = rng.uniform(0.0, 20.0, size=(3000, 3))
    y = X @ [0.5, 0.5, 0.0] + rng.normal(0.0, 1.0, size=3000)
    config = TrainingConfig(
        algorithm="sgd", learning_rate=1e-3, batch_size=1, epochs=2, shuffle=True, seed=5
    )
    with mock.patch.object(training_module, "_CHUNK_STEPS", 2500):
        assert_history_matches_sequential(X, y, config)


def test_long_gd_run_near_the_stability_limit_matches_sequential_loop() -> None:
    rng = np.random.default_rng(12)
    X = rng.uniform(0.0, 20.0, size=(50, 3))
    y = X @ [0.5, 0.5, 0.0] + rng.normal(0.0, 1.0, size=50)
    bound = fit(X, y, TrainingConfig(algorithm="closed_form")).max_stable_learning_rate
    config = TrainingConfig(algorithm="gd", learning_rate=0.99 * bound, iterations=5000)
    assert_history_matches_sequential(X, y, config)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_scan_matches_sequential_recurrence(steps: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    half = rng.normal(size=(steps, dim, dim))
    # Symmetric maps with eigenvalues in (-1, 1], like gd/sgd steps below the stability limit.
    maps = np.eye(dim) - half @ half.transpose(0, 2, 1) / (2 * dim * dim)
    offsets = rng.normal(size=(steps, dim))
    theta = rng.normal(size=dim)
    expected = np.empty((steps, dim))
    current = theta
    for k in range(steps):
        current = maps[k] @ current + offsets[k]
        expected[k] = current
    assert close(scan(prepare(maps, offsets), theta), expected, RELATIVE)
