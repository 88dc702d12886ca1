"""What a running fit reports: history chunks, progress, cancellation, early stopping."""

from unittest import mock

import numpy as np
import pytest

from app.engine import History, Progress, TrainingCancelled, TrainingConfig, fit, split_holdout
from app.engine import training as training_module
from tests.engine.engine_reference import Cohort, direct_risk

SGD = TrainingConfig(algorithm="sgd", learning_rate=1e-4, epochs=3, record_every=4)


def test_history_chunks_concatenate_to_the_final_history(cohort: Cohort) -> None:
    X, y = cohort
    chunks: list[History] = []
    with mock.patch.object(training_module, "_CHUNK_STEPS", 7):
        result = fit(X, y, SGD, on_history=chunks.append)
    assert len(chunks) > 5
    joined = History.concatenate(chunks)
    for field in ("step", "epoch", "train_risk", "gradient", "grad_norm", "theta"):
        np.testing.assert_array_equal(getattr(joined, field), getattr(result.history, field))
    assert result.history.val_risk is None
    assert np.all(np.diff(result.history.step) > 0)


def test_progress_counts_steps_up_to_the_total(cohort: Cohort) -> None:
    X, y = cohort
    reports: list[Progress] = []
    with mock.patch.object(training_module, "_CHUNK_STEPS", 7):
        result = fit(X, y, SGD, on_progress=reports.append)
    total = 3 * 20
    assert [r.total_steps for r in reports] == [total] * len(reports)
    # Chunks of 7 steps never straddle an epoch (20 steps).
    assert [r.steps_done for r in reports] == [7, 14, 20, 27, 34, 40, 47, 54, 60]
    assert reports[-1].epoch == 3
    assert reports[-1].risk == pytest.approx(result.history.train_risk[-1])


def test_epochs_follow_the_course_loop(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X[:25], y[:25], TrainingConfig(algorithm="sgd", epochs=2, batch_size=10))
    # 25 rows in batches of 10: steps 1-3 are epoch 1 (short last batch of 5), 4-6 epoch 2.
    assert result.history.step.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert result.history.epoch.tolist() == [0, 1, 1, 1, 2, 2, 2]


def test_gd_epoch_is_the_step(cohort: Cohort) -> None:
    X, y = cohort
    result = fit(X, y, TrainingConfig(algorithm="gd", iterations=10, record_every=3))
    assert result.history.step.tolist() == [0, 3, 6, 9, 10]
    assert result.history.epoch.tolist() == [0, 3, 6, 9, 10]


def test_cancellation_raises_at_the_next_check(cohort: Cohort) -> None:
    X, y = cohort
    calls = 0
    chunks: list[History] = []

    def stop_on_third_check() -> bool:
        nonlocal calls
        calls += 1
        return calls == 3

    with (
        mock.patch.object(training_module, "_CHUNK_STEPS", 7),
        pytest.raises(TrainingCancelled) as cancelled,
    ):
        fit(X, y, SGD, should_stop=stop_on_third_check, on_history=chunks.append)
    # Checks: before step 0, before steps 1-7, before steps 8-14 -> raised there.
    assert calls == 3
    assert cancelled.value.steps_done == 7
    assert cancelled.value.total_steps == 60
    assert History.concatenate(chunks).step[-1] == 4


def test_should_stop_is_polled_before_every_chunk(cohort: Cohort) -> None:
    X, y = cohort
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    with mock.patch.object(training_module, "_CHUNK_STEPS", 7):
        fit(X, y, SGD, should_stop=never)
    assert calls == 1 + -(-60 // 7)


def early_stopping_reference(val_risks: np.ndarray, patience: int) -> tuple[int | None, int]:
    """(stop position or None, best position), scanning the points one by one."""
    best, best_position, stale = np.inf, 0, 0
    for position, value in enumerate(val_risks):
        if value < best:
            best, best_position, stale = value, position, 0
        else:
            stale += 1
            if stale >= patience:
                return position, best_position
    return None, best_position


@pytest.mark.parametrize("chunk_steps", [5, 1 << 16])
def test_early_stopping_returns_the_best_validation_theta(cohort: Cohort, chunk_steps: int) -> None:
    X, y = cohort
    base = TrainingConfig(
        algorithm="sgd", learning_rate=1e-3, epochs=5, batch_size=2, validation_fraction=0.3
    )
    full = fit(X, y, base)
    assert full.history.val_risk is not None
    stop, best = early_stopping_reference(full.history.val_risk, patience=6)
    assert stop is not None
    assert stop < len(full.history) - 1

    chunks: list[History] = []
    with mock.patch.object(training_module, "_CHUNK_STEPS", chunk_steps):
        stopped = fit(
            X, y, TrainingConfig(**{**base.__dict__, "patience": 6}), on_history=chunks.append
        )
    assert stopped.metrics.early_stopped
    assert stopped.metrics.early_stopping_step == full.history.step[stop]
    assert stopped.metrics.n_steps == full.history.step[stop]
    assert stopped.metrics.best_step == full.history.step[best]
    assert len(stopped.history) == stop + 1
    assert len(History.concatenate(chunks)) == stop + 1
    np.testing.assert_allclose(stopped.theta, full.history.theta[best], rtol=1e-12)
    _, val_idx = split_holdout(len(y), 0.3, 0)
    assert stopped.metrics.val_mse == pytest.approx(
        direct_risk(stopped.theta, X[val_idx], y[val_idx]), rel=1e-9
    )


def test_without_early_stopping_the_final_theta_is_returned(cohort: Cohort) -> None:
    X, y = cohort
    config = TrainingConfig(algorithm="gd", iterations=50, validation_fraction=0.2)
    result = fit(X, y, config)
    assert not result.metrics.early_stopped
    assert result.metrics.best_step is None
    np.testing.assert_array_equal(result.theta, result.history.theta[-1])


def test_history_chunks_are_read_only(cohort: Cohort) -> None:
    X, y = cohort
    chunks: list[History] = []
    result = fit(X, y, SGD, on_history=chunks.append)
    with pytest.raises(ValueError, match="read-only"):
        chunks[0].theta[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        result.history.train_risk[-1] = 0.0
