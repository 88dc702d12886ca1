"""fit(): closed form, full-batch gradient descent and the course's mini-batch SGD.

Every iterative fit runs in chunks of steps. Each chunk builds the affine maps of its steps,
produces all its Θ at once (see scan.py), evaluates the full training risk of every step from
sufficient statistics (divergence check), keeps the recorded points, applies early stopping,
then reports: history chunk, progress, and a cancellation check before the next chunk.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.engine.config import TrainingConfig
from app.engine.data import (
    as_features,
    as_targets,
    check_enough_rows,
    split_holdout,
    standardization,
)
from app.engine.errors import DegenerateDataError, DivergenceError, TrainingCancelled
from app.engine.history import FitMetrics, History, Progress
from app.engine.intervals import IntervalDesign
from app.engine.linear import CentredStatistics, QuadraticRisk, largest_eigenvalue, penalty_matrix
from app.engine.scan import PreparedMaps, prepare, scan
from app.engine.schedule import steps_per_epoch
from app.engine.solve import (
    LeastSquares,
    condition_number,
    hessian_condition,
    solve_least_squares,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Steps per chunk: small enough that a chunk is well under 100 ms of work (cancellation,
# progress and history latency), large enough to amortise the scan's Python-level loops.
_CHUNK_STEPS = 1 << 16
# Rows gathered per sgd chunk, bounding the memory and time of building batch statistics.
_CHUNK_ROWS = 1 << 20
# A risk above this multiple of max(initial risk, variance of y) means the iterates explode.
DIVERGENCE_FACTOR = 1e6
# gd and sgd are warned about when, even at the best learning rate, their steps cannot shrink
# the error along the flattest direction of the risk to this fraction of its start.
CONVERGENCE_FRACTION = 0.1
# A gd/sgd Θ within this fraction of s (RMS over the training rows) of the least-squares Θ
# gets the OLS interval: the shift moves the coverage by well under 0.1%.
INTERVAL_TOLERANCE = 0.01


@dataclass(frozen=True, eq=False)
class FitResult:
    """A finished fit. Θ vectors are (w0, w1, ..., wp) in original grade units.

    `theta` is the final Θ, or the best-validation recorded Θ when early stopping is enabled
    (`metrics.best_step` says which). `theta_star` is the closed-form optimum of the same
    objective. `feature_mean`/`feature_scale` are the z-scoring used when `standardize`.
    `interval` is what the OLS prediction interval needs, when it applies to `theta`: without
    l2, with full-rank features and n > p + 1, for closed_form or a gd/sgd Θ that reached the
    least-squares Θ (within INTERVAL_TOLERANCE·s on the training rows). `warnings` are
    sentences about the fit that are not failures (ill-conditioned raw data for gd/sgd).
    """

    theta: FloatArray
    history: History
    metrics: FitMetrics
    theta_star: FloatArray
    max_stable_learning_rate: float
    feature_mean: FloatArray | None
    feature_scale: FloatArray | None
    interval: IntervalDesign | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Scaling:
    """Θ in z-scored units (a) ↔ Θ in grade units (w): wj = aj/sj, w0 = a0 − Σ aj·mj/sj."""

    mean: FloatArray
    scale: FloatArray

    def to_original(self, thetas: FloatArray) -> FloatArray:
        weights = thetas[:, 1:] / self.scale
        intercepts = thetas[:, 0] - np.einsum("kj,j->k", weights, self.mean)
        return np.column_stack([intercepts, weights])

    def from_original(self, theta: FloatArray) -> FloatArray:
        return np.concatenate([[theta[0] + theta[1:] @ self.mean], theta[1:] * self.scale])

    def matrix(self) -> FloatArray:
        """`from_original` as a matrix: a = T·w."""
        dim = self.mean.shape[0] + 1
        transform = np.zeros((dim, dim))
        transform[0, 0] = 1.0
        transform[0, 1:] = self.mean
        transform[1:, 1:] = np.diag(self.scale)
        return transform

    def gradient_to_original(self, gradients: FloatArray) -> FloatArray:
        # Chain rule through a = (w0 + m·w, s∘w): ∂/∂w0 = ∂/∂a0, ∂/∂wj = mj ∂/∂a0 + sj ∂/∂aj.
        return np.column_stack(
            [gradients[:, 0], gradients[:, :1] * self.mean + gradients[:, 1:] * self.scale]
        )


@dataclass(frozen=True)
class _Problem:
    """The data in fitting space (z-scored when standardize) and everything derived once."""

    config: TrainingConfig
    train_features: FloatArray
    train_targets: FloatArray
    original_train_features: FloatArray
    val_features: FloatArray | None
    val_targets: FloatArray | None
    original_val_features: FloatArray | None
    scaling: _Scaling | None
    penalty: FloatArray  # l2·D
    objective_gram: FloatArray  # G + l2·D, half the Hessian of the objective J
    moments: FloatArray  # X̃ᵀy/n
    statistics: CentredStatistics  # of the training rows in fitting space
    solution: LeastSquares  # in grade units
    train_risk: QuadraticRisk
    val_risk: QuadraticRisk | None
    theta_star: FloatArray  # fitting space
    max_stable_learning_rate: float

    @property
    def n_features(self) -> int:
        return int(self.train_features.shape[1])

    def to_original(self, thetas: FloatArray) -> FloatArray:
        return thetas if self.scaling is None else self.scaling.to_original(thetas)

    def objective_gradient_to_original(
        self, thetas: FloatArray, risk_gradients: FloatArray
    ) -> FloatArray:
        gradients = risk_gradients
        if self.config.l2 > 0:
            gradients = risk_gradients + 2.0 * thetas * np.diagonal(self.penalty)
        return gradients if self.scaling is None else self.scaling.gradient_to_original(gradients)

    def objective_gap(self, theta: FloatArray) -> float:
        """J(Θ) − J(Θ*), from the expansion about the means so a small gap is not lost."""
        increases, _ = self.train_risk.increase(np.vstack([theta, self.theta_star]))
        gap = float(increases[0] - increases[1])
        if self.config.l2 > 0:
            star = self.theta_star[1:]
            gap += self.config.l2 * float((theta[1:] - star) @ (theta[1:] + star))
        return max(0.0, gap)


def fit(
    X: ArrayLike,
    y: ArrayLike,
    config: TrainingConfig,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_history: Callable[[History], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    feature_names: Sequence[str] | None = None,
) -> FitResult:
    """Fit Θ of h_Θ(x) = w0 + Σ wj·xj to (X, y) with `config.algorithm`.

    Raises InvalidConfigError, DegenerateDataError, DivergenceError or TrainingCancelled
    (all EngineError). `on_history` receives consecutive History chunks whose concatenation
    is `result.history`; `should_stop` is polled before every chunk.
    """
    features = as_features(X, feature_names)
    targets = as_targets(y, features.shape[0])
    config.validate(features.shape[1])
    check_enough_rows(features.shape[0])
    problem = _prepare(features, targets, config, feature_names)
    run = _Run(problem, on_progress, on_history, should_stop)
    if config.algorithm == "closed_form":
        return run.closed_form()
    return run.iterate()


def _prepare(
    features: FloatArray,
    targets: FloatArray,
    config: TrainingConfig,
    feature_names: Sequence[str] | None,
) -> _Problem:
    """Everything a fit derives once from its rows: the hold-out, the fitting space, the
    centred statistics, the reference solve Θ*, the conditioning and the interval design.

    Long because each of those steps feeds the next, and splitting them would only pass the
    same dozen arrays from one function to the other.
    """
    train_idx, val_idx = split_holdout(features.shape[0], config.validation_fraction, config.seed)
    if val_idx.size:
        original_train, train_targets = features[train_idx], targets[train_idx]
        original_val: FloatArray | None = features[val_idx]
        val_targets: FloatArray | None = targets[val_idx]
    else:
        original_train, train_targets = features, targets
        original_val = val_targets = None

    scaling = None
    train_features, val_features = original_train, original_val
    if config.standardize:
        scaling = _Scaling(*standardization(original_train, feature_names))
        train_features = (original_train - scaling.mean) / scaling.scale
        if original_val is not None:
            val_features = (original_val - scaling.mean) / scaling.scale

    n_features = train_features.shape[1]
    penalty = config.l2 * penalty_matrix(n_features)
    original_statistics = CentredStatistics.of(original_train, train_targets)
    statistics = original_statistics
    if scaling is not None:
        statistics = CentredStatistics.of(train_features, train_targets)
    # The course's gd and sgd run on X̃ᵀX̃/n and X̃ᵀy/n in the space the user chose; only the
    # reference optimum and the risk expansions work about the means (see solve.py).
    objective_gram = statistics.gram() + penalty
    moments = statistics.moments()
    if not (np.isfinite(objective_gram).all() and np.isfinite(moments).all()):
        raise DegenerateDataError("X or y holds values too large to square in floating point")
    # Solved in grade units: the ridge on z-scored weights aj = sj·wj is l2·sj² on wj.
    ridge = np.full(n_features, config.l2)
    norm = None
    if scaling is not None:
        ridge = ridge * scaling.scale**2
        norm = scaling.matrix()
    solution = solve_least_squares(
        original_train,
        train_targets,
        original_statistics,
        ridge,
        exact=config.algorithm == "closed_form",
        norm=norm,
    )
    theta_star = solution.theta
    train_risk = solution.risk
    if scaling is not None:
        theta_star = scaling.from_original(solution.theta)
        train_risk = QuadraticRisk.around(train_features, train_targets, statistics, theta_star)

    val_risk = None
    if val_features is not None and val_targets is not None:
        val_statistics = CentredStatistics.of(val_features, val_targets)
        val_risk = QuadraticRisk.around(val_features, val_targets, val_statistics, theta_star)
    return _Problem(
        config=config,
        train_features=train_features,
        train_targets=train_targets,
        original_train_features=original_train,
        val_features=val_features,
        val_targets=val_targets,
        original_val_features=original_val,
        scaling=scaling,
        penalty=penalty,
        objective_gram=objective_gram,
        moments=moments,
        statistics=statistics,
        solution=solution,
        train_risk=train_risk,
        val_risk=val_risk,
        theta_star=theta_star,
        max_stable_learning_rate=1.0 / largest_eigenvalue(objective_gram),
    )


class _HistoryBuffer:
    """History arrays allocated once; every emitted chunk is a view of the rows it filled,
    so the chunks and the final history share memory and nothing is concatenated."""

    def __init__(self, capacity: int, dim: int, with_validation: bool) -> None:
        self.step = np.empty(capacity, dtype=np.int64)
        self.epoch = np.empty(capacity, dtype=np.int64)
        self.train_risk = np.empty(capacity)
        self.val_risk = np.empty(capacity) if with_validation else None
        self.gradient = np.empty((capacity, dim))
        self.grad_norm = np.empty(capacity)
        self.theta = np.empty((capacity, dim))
        self.size = 0

    def append(
        self,
        steps: IntArray,
        epochs: IntArray,
        risks: FloatArray,
        val_risks: FloatArray | None,
        gradients: FloatArray,
        thetas: FloatArray,
    ) -> History:
        start, stop = self.size, self.size + len(steps)
        self.step[start:stop] = steps
        self.epoch[start:stop] = epochs
        self.train_risk[start:stop] = risks
        if self.val_risk is not None and val_risks is not None:
            self.val_risk[start:stop] = val_risks
        self.gradient[start:stop] = gradients
        self.grad_norm[start:stop] = np.sqrt(np.einsum("ki,ki->k", gradients, gradients))
        self.theta[start:stop] = thetas
        self.size = stop
        return self.rows(start, stop)

    def rows(self, start: int, stop: int) -> History:
        """Read-only views: chunks already handed out share memory with the final history."""
        rows = slice(start, stop)
        history = History(
            self.step[rows],
            self.epoch[rows],
            self.train_risk[rows],
            None if self.val_risk is None else self.val_risk[rows],
            self.gradient[rows],
            self.grad_norm[rows],
            self.theta[rows],
        )
        for view in (history.step, history.epoch, history.train_risk, history.val_risk):
            if view is not None:
                view.flags.writeable = False
        for view in (history.gradient, history.grad_norm, history.theta):
            view.flags.writeable = False
        return history


class _Run:
    """One fit's state between chunks: where Θ is, what was recorded, early stopping."""

    def __init__(
        self,
        problem: _Problem,
        on_progress: Callable[[Progress], None] | None,
        on_history: Callable[[History], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.problem = problem
        self.config = problem.config
        self.on_progress = on_progress
        self.on_history = on_history
        self.should_stop = should_stop
        self.steps_done = 0
        self.total_steps = 0
        self.history = _HistoryBuffer(0, problem.n_features + 1, problem.val_risk is not None)
        self.best_val = math.inf
        self.stale_points = 0
        self.best_step: int | None = None
        self.best_theta: FloatArray | None = None
        self.early_stopping_step: int | None = None
        self.divergence_threshold = math.inf

    def closed_form(self) -> FitResult:
        self._check_cancelled()
        self.history = _HistoryBuffer(
            1, self.problem.n_features + 1, self.history.val_risk is not None
        )
        theta = self.problem.theta_star[None, :]
        risks, gradients = self.problem.train_risk.risk_and_gradient(theta)
        self._record(
            theta, risks, gradients, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        )
        self._report_progress(epoch=0)
        return self._result(self.problem.theta_star, original=self.problem.solution.theta)

    def _initial_theta(self) -> FloatArray:
        """Θ0 in fitting space: zeros, or `init_theta` (given in grade units)."""
        theta = np.zeros(self.problem.n_features + 1)
        if self.config.init_theta is not None:
            theta = np.asarray(self.config.init_theta, dtype=np.float64)
            if self.problem.scaling is not None:
                theta = self.problem.scaling.from_original(theta)
        return theta

    def iterate(self) -> FitResult:
        problem, config = self.problem, self.config
        theta = self._initial_theta()
        schedule: _Schedule = (
            _GradientDescent(problem) if config.algorithm == "gd" else _MiniBatches(problem)
        )
        self.total_steps = schedule.total_steps
        capacity = 2 + self.total_steps // config.record_every
        self.history = _HistoryBuffer(
            capacity, problem.n_features + 1, problem.val_risk is not None
        )

        self._check_cancelled()
        risks, gradients = problem.train_risk.risk_and_gradient(theta[None, :])
        self.divergence_threshold = DIVERGENCE_FACTOR * max(
            float(risks[0]), problem.statistics.target_variance, 1e-12
        )
        zero = np.zeros(1, dtype=np.int64)
        self._record(theta[None, :], risks, gradients, zero, zero)
        final_theta = theta
        while self.steps_done < self.total_steps and self.early_stopping_step is None:
            self._check_cancelled()
            first = self.steps_done + 1
            prepared, epochs = schedule.chunk(first)
            with np.errstate(over="ignore", invalid="ignore"):
                thetas = scan(prepared, theta)
                risks, gradients = problem.train_risk.risk_and_gradient(thetas)
            steps = np.arange(first, first + len(thetas), dtype=np.int64)
            kept = self._check_divergence(risks)
            # Recorded: every record_every-th step, and the last step of the run. A slice
            # (not an index array) avoids copying whole chunks when record_every is 1.
            recorded: slice | IntArray = slice(
                (-first) % config.record_every, kept, config.record_every
            )
            last_missing = steps[-1] == self.total_steps and (
                self.total_steps % config.record_every
            )
            if kept == len(steps) and last_missing:
                recorded = np.append(np.arange(len(steps))[recorded], kept - 1)
            self._record(
                thetas[recorded],
                risks[recorded],
                gradients[recorded],
                steps[recorded],
                epochs[recorded],
            )
            if kept < len(steps):
                self._diverge(int(steps[kept]), float(risks[kept]))
            theta = final_theta = thetas[-1]
            self.steps_done = int(steps[-1])
            if self.early_stopping_step is not None:
                self.steps_done = self.early_stopping_step
            self._report_progress(epoch=int(epochs[self.steps_done - first]))

        if self.best_theta is not None:
            final_theta = self.best_theta
        return self._result(final_theta)

    def _check_cancelled(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled(self.steps_done, self.total_steps)

    def _check_divergence(self, risks: FloatArray) -> int:
        """How many leading steps are sane (all of them unless the iterates exploded)."""
        exploded = ~(np.isfinite(risks) & (risks <= self.divergence_threshold))
        return int(np.argmax(exploded)) if exploded.any() else len(risks)

    def _diverge(self, step: int, risk: float) -> None:
        if math.isfinite(risk):
            reason = (
                f"the risk reached {risk:.3g}, over {DIVERGENCE_FACTOR:g} times its starting scale"
            )
        else:
            reason = "the risk became infinite"
        bound = self.problem.max_stable_learning_rate
        space = " (standardized features)" if self.problem.scaling is not None else ""
        message = (
            f"training diverged at step {step}: {reason}; "
            f"learning_rate={self.config.learning_rate:g} is too large for these data, "
            f"use at most {_round_down(bound):.3g} for gd{space}"
        )
        if self.config.algorithm == "sgd":
            message += "; mini-batch steps need a smaller value, or a larger batch_size"
        raise DivergenceError(
            message,
            step=step,
            learning_rate=self.config.learning_rate,
            max_stable_learning_rate=bound,
        )

    def _record(
        self,
        thetas: FloatArray,
        risks: FloatArray,
        risk_gradients: FloatArray,
        steps: IntArray,
        epochs: IntArray,
    ) -> None:
        """Store points given in fitting space, apply early stopping, emit the chunk."""
        problem = self.problem
        val_risks = None if problem.val_risk is None else problem.val_risk.risk(thetas)
        end = len(steps)
        if val_risks is not None and self.config.patience is not None and end:
            end = self._early_stopping(val_risks, thetas, steps)
        if end == 0:
            return
        chunk = self.history.append(
            steps[:end],
            epochs[:end],
            risks[:end],
            None if val_risks is None else val_risks[:end],
            problem.objective_gradient_to_original(thetas[:end], risk_gradients[:end]),
            problem.to_original(thetas[:end]),
        )
        if self.on_history is not None:
            self.on_history(chunk)

    def _early_stopping(self, val_risks: FloatArray, thetas: FloatArray, steps: IntArray) -> int:
        """Track the best validation point; return how many points to keep (all unless
        `patience` consecutive points went without a strict improvement)."""
        assert self.config.patience is not None
        count = len(val_risks)
        best_before = np.minimum.accumulate(np.concatenate([[self.best_val], val_risks]))[:-1]
        improved = val_risks < best_before
        positions = np.arange(count)
        last_improved = np.maximum.accumulate(np.where(improved, positions, -1))
        stale = np.where(
            last_improved >= 0, positions - last_improved, self.stale_points + positions + 1
        )
        fired = np.flatnonzero(stale >= self.config.patience)
        end = int(fired[0]) + 1 if fired.size else count
        if improved[:end].any():
            best = int(last_improved[end - 1])
            self.best_val = float(val_risks[best])
            self.best_step = int(steps[best])
            self.best_theta = thetas[best].copy()
        self.stale_points = int(stale[end - 1])
        if fired.size:
            self.early_stopping_step = int(steps[end - 1])
        return end

    def _report_progress(self, epoch: int) -> None:
        if self.on_progress is None:
            return
        current = float(self.history.train_risk[self.history.size - 1])
        self.on_progress(Progress(self.steps_done, self.total_steps, epoch, current))

    def _result(self, theta: FloatArray, original: FloatArray | None = None) -> FitResult:
        """`theta` in fitting space; `original`, when known exactly, the same Θ in grade units."""
        problem = self.problem
        if original is None:
            original = problem.to_original(theta[None, :])[0]
        theta_star = problem.solution.theta
        train = _errors(original, problem.original_train_features, problem.train_targets)
        val = None
        if problem.original_val_features is not None and problem.val_targets is not None:
            val = _errors(original, problem.original_val_features, problem.val_targets)
        n_train, p = problem.train_features.shape
        residual_std = None
        if n_train > p + 1:
            residual_std = math.sqrt(train.mse * n_train / (n_train - p - 1))
        metrics = FitMetrics(
            n_train=n_train,
            n_val=0 if problem.val_targets is None else int(problem.val_targets.shape[0]),
            train_mse=train.mse,
            train_rmse=math.sqrt(train.mse),
            train_mae=train.mae,
            train_r2=train.r2,
            val_mse=None if val is None else val.mse,
            val_rmse=None if val is None else math.sqrt(val.mse),
            val_mae=None if val is None else val.mae,
            val_r2=None if val is None else val.r2,
            risk_gap=problem.objective_gap(theta),
            theta_distance=float(np.linalg.norm(original - theta_star)),
            n_steps=self.steps_done,
            early_stopped=self.early_stopping_step is not None,
            early_stopping_step=self.early_stopping_step,
            best_step=self.best_step,
            residual_std=residual_std,
            condition_number=condition_number(problem.solution.singular_values),
        )
        return FitResult(
            theta=original,
            history=self.history.rows(0, self.history.size),
            metrics=metrics,
            theta_star=theta_star,
            max_stable_learning_rate=problem.max_stable_learning_rate,
            feature_mean=None if problem.scaling is None else problem.scaling.mean,
            feature_scale=None if problem.scaling is None else problem.scaling.scale,
            interval=_interval_design(problem, metrics),
            warnings=_conditioning_warnings(problem, self.total_steps),
        )


def _interval_design(problem: _Problem, metrics: FitMetrics) -> IntervalDesign | None:
    """The OLS interval's ingredients in grade units, or None where it would mislead."""
    solution, config = problem.solution, problem.config
    if config.l2 > 0 or solution.r_factor is None or metrics.residual_std is None:
        return None
    # risk_gap = (1/n)‖X̃(Θ − Θ*)‖² exactly when l2 = 0: the RMS shift of the predictions.
    shift = math.sqrt(metrics.risk_gap)
    if config.algorithm != "closed_form" and shift > INTERVAL_TOLERANCE * metrics.residual_std:
        return None
    return IntervalDesign(
        n_train=metrics.n_train,
        residual_std=metrics.residual_std,
        feature_mean=solution.feature_mean,
        feature_scale=solution.scale,
        r_factor=solution.r_factor,
    )


def steps_to_converge(kappa: float) -> float:
    """Steps gd needs, at its best constant learning rate 1/(μmax + μmin), to shrink the error
    along the flattest direction to CONVERGENCE_FRACTION: each step multiplies it by
    (κ − 1)/(κ + 1), κ the condition number of the Hessian."""
    if kappa <= 1:
        return 1.0
    if not math.isfinite(kappa) or kappa > 1e300:
        return math.inf
    return math.log(1 / CONVERGENCE_FRACTION) / math.log1p(2 / (kappa - 1))


def _conditioning_warnings(problem: _Problem, total_steps: int) -> tuple[str, ...]:
    config = problem.config
    if config.algorithm == "closed_form" or config.standardize:
        return ()
    kappa = hessian_condition(problem.solution, config.l2, centred=False)
    needed = steps_to_converge(kappa)
    # Collinear features (κ infinite) have a flat direction gd never needs to travel.
    if total_steps >= needed or not math.isfinite(kappa):
        return ()
    kappa_z = hessian_condition(problem.solution, config.l2, centred=True)
    return (
        f"{config.algorithm} ran {total_steps} steps on raw grades, where the risk's Hessian "
        f"has condition number {kappa:.3g}: even at the best learning rate, getting near the "
        f"optimum takes about {needed:.3g} steps, so Θ is probably far from it "
        f"(see theta_distance). With standardize=true the condition number is {kappa_z:.3g} "
        f"and about {steps_to_converge(kappa_z):.3g} steps suffice.",
    )


@dataclass(frozen=True)
class _Errors:
    mse: float
    mae: float
    r2: float | None


def _errors(theta: FloatArray, features: FloatArray, targets: FloatArray) -> _Errors:
    residuals = features @ theta[1:]
    residuals += theta[0] - targets
    n = targets.shape[0]
    sse = float(residuals @ residuals)
    mae = float(np.abs(residuals, out=residuals).sum()) / n
    mean = float(targets.mean())
    total = float(targets @ targets) - n * mean * mean
    # The sum of squares about the mean by a shortcut; it is only 0 for a constant y, where
    # R² is undefined, and rounding can leave a tiny residue there.
    constant = total <= 1e-12 * float(targets @ targets)
    return _Errors(sse / n, mae, None if constant else 1.0 - sse / total)


def _round_down(value: float) -> float:
    """Truncate to 3 significant digits so the advertised bound is itself stable."""
    if value <= 0 or not math.isfinite(value):
        return value
    unit = 10.0 ** (math.floor(math.log10(value)) - 2)
    return math.floor(value / unit) * unit


class _Schedule(Protocol):
    total_steps: int

    def chunk(self, first: int) -> tuple[PreparedMaps, IntArray]:
        """The maps of the next steps, starting at step `first`, and their epoch numbers."""
        ...


class _GradientDescent:
    """Θ ← Θ − λ∇J(Θ) = (I − 2λ(G + l2·D))Θ + 2λX̃ᵀy/n: one constant affine map."""

    def __init__(self, problem: _Problem) -> None:
        config = problem.config
        self.total_steps = config.iterations
        dim = problem.n_features + 1
        rate = config.learning_rate
        self.map = np.eye(dim) - 2.0 * rate * problem.objective_gram
        self.offset = 2.0 * rate * problem.moments
        self._prepared: PreparedMaps | None = None

    def chunk(self, first: int) -> tuple[PreparedMaps, IntArray]:
        count = min(_CHUNK_STEPS, self.total_steps - first + 1)
        if self._prepared is None or self._prepared.steps != count:
            dim = self.offset.shape[0]
            self._prepared = prepare(
                np.broadcast_to(self.map, (count, dim, dim)),
                np.broadcast_to(self.offset, (count, dim)),
            )
        return self._prepared, np.arange(first, first + count, dtype=np.int64)


class _MiniBatches:
    """The course's sgd: per epoch, batches B = {b, ..., b+batch_size−1} of the row order
    (a fresh seeded permutation per epoch when shuffle), short last batch kept with its own #B.
    Step k's map: Θ ← (I − (2λ/#B)X̃_BᵀX̃_B − 2λ·l2·D)Θ + (2λ/#B)X̃_Bᵀy_B.
    """

    def __init__(self, problem: _Problem) -> None:
        config = problem.config
        self.problem = problem
        self.batch_size = config.batch_size
        n = problem.train_features.shape[0]
        self.steps_per_epoch = steps_per_epoch(n, config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.steps_per_chunk = max(1, min(_CHUNK_STEPS, _CHUNK_ROWS // config.batch_size))
        self._order: IntArray | None = None
        self._order_epoch = 0
        # Without shuffling every epoch repeats the same batches: build and compose once.
        self._cache: dict[int, PreparedMaps] = {}

    def chunk(self, first: int) -> tuple[PreparedMaps, IntArray]:
        epoch = (first - 1) // self.steps_per_epoch + 1
        first_batch = (first - 1) % self.steps_per_epoch
        count = min(self.steps_per_chunk, self.steps_per_epoch - first_batch)
        prepared = self._cache.get(first_batch)
        if prepared is None:
            prepared = prepare(*self._maps(epoch, first_batch, count))
            if not self.problem.config.shuffle:
                self._cache[first_batch] = prepared
        return prepared, np.full(count, epoch, dtype=np.int64)

    def _maps(self, epoch: int, first_batch: int, count: int) -> tuple[FloatArray, FloatArray]:
        problem = self.problem
        start = first_batch * self.batch_size
        stop = min(start + count * self.batch_size, problem.train_targets.shape[0])
        if problem.config.shuffle:
            rows = self._epoch_order(epoch)[start:stop]
            features, targets = problem.train_features[rows], problem.train_targets[rows]
        else:
            features = problem.train_features[start:stop]
            targets = problem.train_targets[start:stop]
        full = (stop - start) // self.batch_size
        split = full * self.batch_size
        parts = [self._group_maps(features[:split], targets[:split], full, self.batch_size)]
        if split < stop - start:
            parts.append(
                self._group_maps(features[split:], targets[split:], 1, stop - start - split)
            )
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([part[0] for part in parts]), np.concatenate(
            [part[1] for part in parts]
        )

    def _epoch_order(self, epoch: int) -> IntArray:
        if self._order is None or self._order_epoch != epoch:
            n = self.problem.train_targets.shape[0]
            self._order = np.random.default_rng((self.problem.config.seed, 1, epoch)).permutation(n)
            self._order_epoch = epoch
        return self._order

    def _group_maps(
        self, features: FloatArray, targets: FloatArray, batches: int, size: int
    ) -> tuple[FloatArray, FloatArray]:
        """Maps of `batches` consecutive batches of `size` rows, in one vectorised pass."""
        config = self.problem.config
        p = features.shape[1]
        blocks = features.reshape(batches, size, p)
        blocks_t = blocks.transpose(0, 2, 1)
        target_blocks = targets.reshape(batches, size)
        step = 2.0 * config.learning_rate / size
        maps = np.empty((batches, p + 1, p + 1))
        ones = np.ones(size)  # products with ones beat sum(axis=1) over a short axis
        column_sums = blocks_t @ ones
        maps[:, 0, 0] = 1.0 - step * size
        maps[:, 0, 1:] = maps[:, 1:, 0] = -step * column_sums
        maps[:, 1:, 1:] = np.matmul(blocks_t, blocks) * -step
        diagonal = np.arange(1, p + 1)
        maps[:, diagonal, diagonal] += 1.0 - 2.0 * config.learning_rate * config.l2
        offsets = np.empty((batches, p + 1))
        offsets[:, 0] = step * np.einsum("bk->b", target_blocks)
        offsets[:, 1:] = step * np.matmul(blocks_t, target_blocks[:, :, None])[:, :, 0]
        return maps, offsets
