"""What a fit reports while it runs (Progress, History chunks) and when it ends (FitMetrics)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Progress:
    steps_done: int
    total_steps: int
    epoch: int
    risk: float


@dataclass(frozen=True, eq=False)
class History:
    """Recorded points, one row each: step 0 (initial Θ), every record_every-th step, the last.

    `train_risk` is the full empirical risk R(Θ) on the training rows (never a mini-batch
    loss); `val_risk` is None without a hold-out. `theta` is in original grade units;
    `gradient` is the gradient of the objective being minimised (R, plus l2·Σ_{j≥1} wj² when
    l2 > 0) with respect to that Θ, so it is ∇R exactly when l2 = 0 and it vanishes at the
    optimum in every case. `epoch` is 0 at step 0; for gd, where every step sees every row,
    it equals the step.
    """

    step: IntArray
    epoch: IntArray
    train_risk: FloatArray
    val_risk: FloatArray | None
    gradient: FloatArray
    grad_norm: FloatArray
    theta: FloatArray

    def __len__(self) -> int:
        return int(self.step.shape[0])

    @classmethod
    def concatenate(cls, chunks: Sequence["History"]) -> "History":
        """One History from consecutive chunks (at least one)."""
        val_parts = [chunk.val_risk for chunk in chunks]
        val_risk = None
        if all(part is not None for part in val_parts):
            val_risk = np.concatenate([part for part in val_parts if part is not None])
        return cls(
            np.concatenate([chunk.step for chunk in chunks]),
            np.concatenate([chunk.epoch for chunk in chunks]),
            np.concatenate([chunk.train_risk for chunk in chunks]),
            val_risk,
            np.concatenate([chunk.gradient for chunk in chunks]),
            np.concatenate([chunk.grad_norm for chunk in chunks]),
            np.concatenate([chunk.theta for chunk in chunks]),
        )


@dataclass(frozen=True)
class FitMetrics:
    """Plain numbers about a finished fit; None where a figure does not apply.

    `risk_gap` is J(Θ) − J(Θ*) ≥ 0 for the minimised objective J (= R when l2 = 0) and
    `theta_distance` is ‖Θ − Θ*‖ in grade units. `residual_std` is sqrt(SSE / (n − p − 1))
    on the training rows, defined when n > p + 1. R² is None when y is constant.
    `condition_number` is κ of the standardised training design (1, (X − x̄)/s), whatever
    `standardize` says: about 1 for independent grades, 1e3 and more for nearly collinear
    ones, inf for exactly collinear ones (including a constant column).
    """

    n_train: int
    n_val: int
    train_mse: float
    train_rmse: float
    train_mae: float
    train_r2: float | None
    val_mse: float | None
    val_rmse: float | None
    val_mae: float | None
    val_r2: float | None
    risk_gap: float
    theta_distance: float
    n_steps: int
    early_stopped: bool
    early_stopping_step: int | None
    best_step: int | None
    residual_std: float | None
    condition_number: float


def thin(points: NDArray[np.float64], max_points: int | None) -> NDArray[np.float64]:
    """At most `max_points` rows of `points`, evenly spaced, keeping the first and the last."""
    k = points.shape[0]
    if max_points is None or k <= max_points:
        return points
    if max_points == 1:
        return points[-1:]
    index = np.unique(np.round(np.linspace(0, k - 1, max_points)).astype(np.int64))
    return points[index]
