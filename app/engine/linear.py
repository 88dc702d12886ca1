"""The linear model h_Θ(x) = w0 + Σ wj·xj, its empirical risk and the least-squares optimum."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.engine.data import as_features, as_targets, standardization

FloatArray = NDArray[np.float64]

# Eigenvalues of the (ridge) Gram matrix below this fraction of the largest are treated as
# exact collinearity: above it, rounding in XᵀX would dominate the solution.
_RANK_TOLERANCE = 1e-12


def predict(theta: ArrayLike, X: ArrayLike) -> FloatArray:
    """h_Θ(x) = w0 + Σ wj·xj for every row of X; Θ = (w0, w1, ..., wp) in grade units."""
    weights = np.asarray(theta, dtype=np.float64)
    features = as_features(X)
    if weights.shape != (features.shape[1] + 1,):
        raise ValueError(
            f"theta must hold {features.shape[1] + 1} values for {features.shape[1]} "
            f"features, got shape {weights.shape}"
        )
    predictions: FloatArray = features @ weights[1:] + weights[0]
    return predictions


def contributions(theta: FloatArray, X: FloatArray) -> tuple[FloatArray, FloatArray]:
    """h_Θ(x) for every row of X, with its terms wj·xj (n, p): a row's terms added one
    after the other, then w0, so that shown terms add up to the shown prediction.

    Column by column: the order numpy's ``sum(axis=1)`` takes for fewer than 8 terms, 7×
    cheaper than that reduction over a short axis, and the same order for any p."""
    terms: FloatArray = X * theta[1:]
    if terms.shape[1] == 0:
        return np.full(terms.shape[0], theta[0], dtype=np.float64), terms
    raw: FloatArray = terms[:, 0].copy()
    for j in range(1, terms.shape[1]):
        raw += terms[:, j]
    raw += theta[0]
    return raw, terms


def risk(theta: ArrayLike, X: ArrayLike, y: ArrayLike) -> float:
    """Empirical risk R(Θ) = (1/n) Σ (h_Θ(xi) − yi)², by a direct pass over the rows."""
    predictions = predict(theta, X)
    residuals = predictions - as_targets(y, predictions.shape[0])
    return float(np.mean(residuals**2))


def max_stable_learning_rate(X: ArrayLike, *, standardize: bool = False, l2: float = 0.0) -> float:
    """Largest λ for which gd converges on these rows: 1 / λmax(X̃ᵀX̃/n + l2·D).

    gd multiplies the error by I − 2λ(X̃ᵀX̃/n + l2·D) each step (X̃ = X with a column of ones,
    D = diag(0, 1, ..., 1): the intercept is not penalised), which contracts iff λ is below
    this value. Pass the training rows; with `standardize` the bound is for z-scored features.
    """
    features = as_features(X)
    if standardize:
        mean, scale = standardization(features, None)
        features = (features - mean) / scale
    return 1.0 / largest_eigenvalue(gram_matrix(features) + l2 * penalty_matrix(features.shape[1]))


def penalty_matrix(n_features: int) -> FloatArray:
    """D = diag(0, 1, ..., 1): the ridge term l2·Σ_{j≥1} wj² leaves the intercept w0 free."""
    diagonal = np.ones(n_features + 1)
    diagonal[0] = 0.0
    return np.diag(diagonal)


def gram_matrix(features: FloatArray) -> FloatArray:
    """X̃ᵀX̃ / n where X̃ = (1, X), built without materialising X̃."""
    n, p = features.shape
    gram = np.empty((p + 1, p + 1))
    gram[0, 0] = 1.0
    # A product with ones beats features.mean(axis=0), a slow reduction over a short axis.
    gram[0, 1:] = gram[1:, 0] = features.T @ np.ones(n) / n
    gram[1:, 1:] = features.T @ features / n
    return gram


def largest_eigenvalue(symmetric: FloatArray) -> float:
    return float(np.linalg.eigvalsh(symmetric)[-1])


@dataclass(frozen=True)
class CentredStatistics:
    """The rows' moments about their column means, accumulated by chunks of shifted rows.

    Sums of raw products (XᵀX, Xᵀy, yᵀy) hold the square of every offset: a grade around 10,000
    with a spread of 1 loses eight digits to cancellation when the spread is recovered from them.
    Here each column is shifted by its mean as computed in floating point, `feature_mean` m (and
    y by `target_mean` t); the shifted values D = X − m are exact or nearly so, and what the
    rounding of m leaves, their own small mean μ = mean(D), is kept rather than assumed zero.
    The raw moments the course's update needs are rebuilt from these exactly enough (each within
    rounding of its own size).
    """

    n: int
    feature_mean: FloatArray  # m, the shift
    target_mean: float  # t
    shift_mean: FloatArray  # μ = mean(X − m), of the order of the rounding of m
    target_shift_mean: float  # ν = mean(y − t)
    second_moment: FloatArray  # (1/n)·DᵀD
    cross_moment: FloatArray  # (1/n)·Dᵀ(y − t)
    target_moment: float  # (1/n)·(y − t)ᵀ(y − t)

    @classmethod
    def of(cls, features: FloatArray, targets: FloatArray) -> "CentredStatistics":
        n, p = features.shape
        ones = np.ones(n)
        # Products with ones beat mean(axis=0), a slow reduction over a short axis.
        mean = features.T @ ones / n
        target_mean = float(targets @ ones) / n
        shifter = Shifter(n, mean)
        sums = np.zeros(p)
        second = np.zeros((p, p))
        cross = np.zeros(p)
        target_sum = target_second = 0.0
        for start in range(0, n, CHUNK_ROWS):
            shifted = shifter.shift(features, start)
            shifted_targets = targets[start : start + CHUNK_ROWS] - target_mean
            sums += shifted.T @ shifter.ones[: shifted.shape[0]]
            second += shifted.T @ shifted
            cross += shifted.T @ shifted_targets
            target_sum += float(shifted_targets.sum())
            target_second += float(shifted_targets @ shifted_targets)
        return cls(
            n,
            mean,
            target_mean,
            sums / n,
            target_sum / n,
            second / n,
            cross / n,
            target_second / n,
        )

    @property
    def covariance(self) -> FloatArray:
        """(1/n)·X_cᵀX_c about the exact means (μ is tiny, so nothing cancels)."""
        covariance: FloatArray = self.second_moment - np.outer(self.shift_mean, self.shift_mean)
        return covariance

    @property
    def target_variance(self) -> float:
        return self.target_moment - self.target_shift_mean**2

    def gram(self) -> FloatArray:
        """X̃ᵀX̃/n = [[1, x̄ᵀ], [x̄, C + x̄x̄ᵀ]], x̄ = m + μ."""
        p = self.feature_mean.shape[0]
        mean = self.feature_mean + self.shift_mean
        gram = np.empty((p + 1, p + 1))
        gram[0, 0] = 1.0
        gram[0, 1:] = gram[1:, 0] = mean
        gram[1:, 1:] = self.covariance + np.outer(mean, mean)
        return gram

    def moments(self) -> FloatArray:
        """X̃ᵀy/n = (ȳ, X_cᵀy_c/n + x̄·ȳ)."""
        mean = self.feature_mean + self.shift_mean
        target_mean = self.target_mean + self.target_shift_mean
        covariance = self.cross_moment - self.shift_mean * self.target_shift_mean
        return np.concatenate([[target_mean], covariance + mean * target_mean])


# Rows per chunk of the passes that shift the data: a chunk's shifted copy stays in cache.
CHUNK_ROWS = 1 << 13


class Shifter:
    """X − m chunk by chunk into one buffer. Subtracting m (a short row) by broadcasting is
    slow in numpy, so the chunk is subtracted as a flat array from m tiled once."""

    def __init__(self, n: int, mean: FloatArray) -> None:
        rows = min(n, CHUNK_ROWS)
        self.p = mean.shape[0]
        self.tiled = np.tile(mean, rows)
        self.buffer = np.empty(rows * self.p)
        self.ones = np.ones(rows)

    def shift(self, features: FloatArray, start: int) -> FloatArray:
        chunk = features[start : start + CHUNK_ROWS]
        size = chunk.size
        np.subtract(chunk.reshape(-1), self.tiled[:size], out=self.buffer[:size])
        return self.buffer[:size].reshape(chunk.shape[0], self.p)


@dataclass(frozen=True)
class QuadraticRisk:
    """R(Θ) on fixed rows as an exact quadratic in Θ, so a point costs O(p²), not O(n·p).

    With Δ = Θ − Θref, D = X − m (see CentredStatistics) and δ = Δ0 + m·Δ_w, the residuals are
    r(Θ) = r(Θref) + δ + D·Δ_w, so with u = (δ, Δ_w)
    R(Θ) = R(Θref) + g0·δ + g_wᵀΔ_w + δ² + 2δ·μᵀΔ_w + Δ_wᵀ(DᵀD/n)Δ_w = R(Θref) + gᵀu + uᵀMu,
    where g = (g0, g_w) = (2/n)·(Σ ri, Dᵀr) comes from one direct pass over the rows at Θref.
    Nothing in it carries the square of a column offset, and expanding around a Θref at the
    optimum leaves no cancellation against yᵀy/n when R is small: the history's risks and
    gradients match a direct two-pass computation to 1e-9 even at R = 1e-8·mean(y²).
    """

    shift: FloatArray  # T, with T·Δ = (δ, Δ_w): [[1, mᵀ], [0, I]]
    moments: FloatArray  # M = [[1, μᵀ], [μ, DᵀD/n]], so that R(Θ) − R(Θref) = uᵀMu + gᵀu
    theta_ref: FloatArray
    risk_ref: float
    centred_gradient_ref: FloatArray  # g = (g0, g_w)

    @classmethod
    def around(
        cls,
        features: FloatArray,
        targets: FloatArray,
        stats: CentredStatistics,
        theta_ref: FloatArray,
    ) -> "QuadraticRisk":
        n, p = features.shape
        weights = theta_ref[1:]
        # r = D·w + (w0 + m·w) − y, and Dᵀr, by chunks of shifted rows: one pass, and no
        # offset is multiplied in.
        level = theta_ref[0] + float(stats.feature_mean @ weights)
        shifter = Shifter(n, stats.feature_mean)
        residuals = np.empty(min(n, CHUNK_ROWS))
        weighted = np.zeros(p)
        residual_sum = squares = 0.0
        for start in range(0, n, CHUNK_ROWS):
            rows = shifter.shift(features, start)
            chunk = residuals[: rows.shape[0]]
            np.matmul(rows, weights, out=chunk)
            chunk += level
            chunk -= targets[start : start + CHUNK_ROWS]
            weighted += rows.T @ chunk
            residual_sum += float(chunk.sum())
            squares += float(chunk @ chunk)
        gradient = 2.0 / n * np.concatenate([[residual_sum], weighted])
        shift = np.eye(p + 1)
        shift[0, 1:] = stats.feature_mean
        moments = np.empty((p + 1, p + 1))
        moments[0, 0] = 1.0
        moments[0, 1:] = moments[1:, 0] = stats.shift_mean
        moments[1:, 1:] = stats.second_moment
        return cls(shift, moments, theta_ref, squares / n, gradient)

    def increase(self, thetas: FloatArray) -> tuple[FloatArray, FloatArray]:
        """R(Θ) − R(Θref) and the gradient in u = (δ, Δ_w) at each row of `thetas` (k, p+1)."""
        # u = T·Δ: δ is computed once, as the value it is; nothing after it cancels.
        shifted = (thetas - self.theta_ref) @ self.shift.T
        curvature = shifted @ self.moments
        increase = np.einsum("ki,ki->k", shifted, curvature)
        increase += shifted @ self.centred_gradient_ref
        # In place: broadcasting over a short last axis is slow, so spare the temporaries.
        curvature *= 2.0
        curvature += self.centred_gradient_ref
        return increase, curvature

    def risk_and_gradient(self, thetas: FloatArray) -> tuple[FloatArray, FloatArray]:
        """R and ∇R (with respect to Θ itself) at each row of `thetas` (k, p+1)."""
        increase, gradients = self.increase(thetas)
        increase += self.risk_ref
        # ∇_Θ R = Tᵀ·∇_u R: ∂R/∂wj = mj·∂R/∂δ + ∂R/∂Δwj.
        full: FloatArray = gradients @ self.shift
        return increase, full

    def risk(self, thetas: FloatArray) -> FloatArray:
        return self.risk_and_gradient(thetas)[0]
