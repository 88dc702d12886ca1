"""k-fold cross-validation of closed_form and gd from per-fold sufficient statistics.

One pass over the rows gathers, per fold k, the moments of u = (1, x − m, y − t) (m, t the
means of all rows): UₖᵀUₖ and Uₖᵀ(y − t). Fold k trains on the total minus fold k and is
scored on fold k, so no fold touches the rows again. closed_form solves the ridge normal
equations in these shifted coordinates (the intercept absorbs the shift exactly); gd runs the
course's iteration in its fitting space (raw or z-scored grades), all `iterations` steps at
once as a power of its affine map. sgd, whose batches have no such shortcut, fits each fold.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.engine.config import TrainingConfig
from app.engine.data import as_features, as_targets, check_enough_rows, kfold_indices
from app.engine.errors import (
    DegenerateDataError,
    DivergenceError,
    InvalidConfigError,
    TrainingCancelled,
)
from app.engine.history import Progress
from app.engine.linear import risk
from app.engine.schedule import planned_steps
from app.engine.training import fit

FloatArray = NDArray[np.float64]

MIN_FOLDS = 2
MAX_FOLDS = 20
DEFAULT_FOLDS = 5
FROM_STATISTICS = ("gd", "closed_form")


@dataclass(frozen=True)
class FoldScore:
    fold: int  # 1-based
    n_validation: int
    rmse: float


@dataclass(frozen=True)
class CrossValidation:
    """`cv_rmse` is the mean of the folds' RMSE, `cv_rmse_std` their (population) spread;
    `n_steps` the steps the fold fits took (0 when computed from statistics)."""

    folds: tuple[FoldScore, ...]
    cv_rmse: float
    cv_rmse_std: float
    n_steps: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "cv_rmse": self.cv_rmse,
            "cv_rmse_std": self.cv_rmse_std,
            "folds": [
                {"fold": f.fold, "n_validation": f.n_validation, "rmse": f.rmse} for f in self.folds
            ],
        }


def check_folds(n: int, folds: int) -> None:
    """Raise InvalidConfigError('folds') unless every fold keeps ≥ 1 validation and ≥ 2
    training rows."""
    if not (isinstance(folds, int) and not isinstance(folds, bool)):
        raise InvalidConfigError("folds", f"must be an integer, got {folds!r}")
    if not MIN_FOLDS <= folds <= MAX_FOLDS:
        raise InvalidConfigError("folds", f"must be in [{MIN_FOLDS}, {MAX_FOLDS}], got {folds}")
    if folds > n:
        raise InvalidConfigError("folds", f"{folds} folds need at least {folds} pupils, got {n}")
    if n - -(-n // folds) < 2:
        raise InvalidConfigError(
            "folds", f"{folds} folds of {n} pupils leave fewer than 2 training rows in a fold"
        )


def fold_steps(n: int, config: TrainingConfig, folds: int) -> int:
    """The steps the fold fits of `cross_validate` take: 0 from statistics, else sgd's."""
    if config.algorithm in FROM_STATISTICS:
        return 0
    return sum(planned_steps(n - part.size, config) for part in kfold_indices(n, folds, 0))


def cross_validate(
    X: ArrayLike,
    y: ArrayLike,
    config: TrainingConfig,
    folds: int,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CrossValidation:
    """Each fold's validation RMSE of `config`'s fit on the other folds (seeded folds).

    gd and closed_form come from per-fold statistics; sgd fits once per fold, reporting
    `on_progress` over all its folds and polling `should_stop` (TrainingCancelled)."""
    features = as_features(X)
    targets = as_targets(y, features.shape[0])
    n, p = features.shape
    check_enough_rows(n)
    config.validate(p)
    check_folds(n, folds)
    parts = kfold_indices(n, folds, config.seed)
    if config.algorithm not in FROM_STATISTICS:
        return _refit_per_fold(features, targets, config, parts, on_progress, should_stop)
    shift, target_shift = features.mean(axis=0), float(targets.mean())
    per_fold = []
    sizes = [int(idx.size) for idx in parts]
    for idx in parts:
        rows = np.empty((idx.size, p + 2))
        rows[:, 0] = 1.0
        rows[:, 1:-1] = features[idx] - shift
        rows[:, -1] = targets[idx] - target_shift
        per_fold.append(rows.T @ rows)
    total = np.sum(per_fold, axis=0)
    rmses = []
    for k, moments in enumerate(per_fold):
        theta = _fit(total - moments, config, shift, target_shift)
        rmses.append(float(np.sqrt(max(_sse(moments, theta), 0.0) / sizes[k])))
    return _scores(sizes, rmses, 0)


def _scores(sizes: list[int], rmses: list[float], n_steps: int) -> CrossValidation:
    scores = tuple(
        FoldScore(k + 1, size, r) for k, (size, r) in enumerate(zip(sizes, rmses, strict=True))
    )
    spread = np.array(rmses)
    return CrossValidation(scores, float(spread.mean()), float(spread.std()), n_steps)


def _refit_per_fold(
    features: FloatArray,
    targets: FloatArray,
    config: TrainingConfig,
    parts: list[NDArray[np.int64]],
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> CrossValidation:
    """One fit per fold on its training rows, progress counted over every fold."""
    n = features.shape[0]
    total = sum(planned_steps(n - part.size, config) for part in parts)
    done = 0

    def progress(report: Progress) -> None:
        if on_progress is not None:
            on_progress(Progress(done + report.steps_done, total, report.epoch, report.risk))

    rmses = []
    for part in parts:
        train = np.setdiff1d(np.arange(n), part)
        try:
            result = fit(
                features[train],
                targets[train],
                config,
                on_progress=progress,
                should_stop=should_stop,
            )
        except TrainingCancelled as cancelled:
            raise TrainingCancelled(done + cancelled.steps_done, total) from cancelled
        done += result.metrics.n_steps
        rmses.append(float(np.sqrt(risk(result.theta, features[part], targets[part]))))
    return _scores([int(part.size) for part in parts], rmses, done)


def _sse(moments: FloatArray, theta: FloatArray) -> float:
    """Σ (e − θ·u)² over a fold, from [UᵀU, Uᵀe; ·, eᵀe] (θ in shifted coordinates)."""
    gram, cross, ee = moments[:-1, :-1], moments[:-1, -1], moments[-1, -1]
    return float(ee - 2.0 * theta @ cross + theta @ gram @ theta)


def _fit(moments: FloatArray, config: TrainingConfig, shift: FloatArray, t: float) -> FloatArray:
    """θ in shifted coordinates (prediction − t = θ·(1, x − m)) fitted on these moments."""
    n = moments[0, 0]
    gram, cross = moments[:-1, :-1] / n, moments[:-1, -1] / n
    dim = gram.shape[0]
    mean_d = gram[0, 1:]  # training mean of x − m
    scale = np.ones(dim - 1)
    if config.standardize:
        variance = np.diagonal(gram)[1:] - mean_d**2
        scale = np.sqrt(np.maximum(variance, 0.0))
        for j in range(dim - 1):
            if scale[j] <= 1e-12 * max(1.0, abs(float(shift[j] + mean_d[j]))):
                raise DegenerateDataError(
                    f"feature {j} is constant on the training rows of a fold, so it cannot "
                    "be standardized; use fewer folds or turn standardize off",
                    feature=j,
                    parameter="folds",
                )
    if config.algorithm == "closed_form":
        # The ridge is on the fitting-space weights: l2·sj² on wj when standardized.
        ridge = np.diag(np.concatenate([[0.0], config.l2 * scale**2]))
        solution: FloatArray = np.linalg.lstsq(gram + ridge, cross, rcond=None)[0]
        return solution
    return _gradient_descent(gram, cross, config, shift, t, mean_d, scale)


def _gradient_descent(
    gram: FloatArray,
    cross: FloatArray,
    config: TrainingConfig,
    shift: FloatArray,
    t: float,
    mean_d: FloatArray,
    scale: FloatArray,
) -> FloatArray:
    """The course's gd, Θ ← Θ − λ∇J, in its fitting space f = T·u, for `iterations` steps."""
    dim = gram.shape[0]
    # Fitting space: raw x̃ = (1, d + m), or z̃ = (1, (d − μ)/s) with μ, s of the training rows.
    transform = np.eye(dim)
    if config.standardize:
        transform[1:, 0] = -mean_d / scale
        transform[1:, 1:] = np.diag(1.0 / scale)
    else:
        transform[1:, 0] = shift
    fit_gram = transform @ gram @ transform.T
    # Moments of y = e + t: Uᵀy/n = Uᵀe/n + t·Uᵀ1/n, and Uᵀ1/n is the first column of the gram.
    fit_moments = transform @ (cross + t * gram[:, 0])
    penalty = config.l2 * np.diag(np.concatenate([[0.0], np.ones(dim - 1)]))
    rate = config.learning_rate
    step = np.eye(dim + 1)
    step[:dim, :dim] -= 2.0 * rate * (fit_gram + penalty)
    step[:dim, dim] = 2.0 * rate * fit_moments
    w = np.zeros(dim) if config.init_theta is None else np.asarray(config.init_theta, float)
    start = w.copy()
    if config.standardize:  # a0 = w0 + w·mean(x), aj = wj·sj
        start[0] = w[0] + w[1:] @ (shift + mean_d)
        start[1:] = w[1:] * scale
    with np.errstate(over="ignore", invalid="ignore"):
        theta_fit = (np.linalg.matrix_power(step, config.iterations) @ np.append(start, 1.0))[:dim]
    if not np.isfinite(theta_fit).all():
        largest = float(np.linalg.eigvalsh(fit_gram + penalty)[-1])
        raise DivergenceError(
            f"gd diverged on a fold: learning_rate={rate:g} is too large for these data "
            f"(at most {1.0 / largest:.3g})",
            step=config.iterations,
            learning_rate=rate,
            max_stable_learning_rate=1.0 / largest,
        )
    theta: FloatArray = transform.T @ theta_fit  # prediction = θ·u
    theta[0] -= t
    return theta
