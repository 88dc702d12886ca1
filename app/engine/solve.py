"""The least-squares optimum Θ* of J(Θ) = R(Θ) + Σ_{j≥1} l2_j·wj², accurate on hard data.

The solve never forms X̃ᵀX̃ of the data as given: that squares the condition number, and on
NIST's Longley or Wampler problems it leaves no correct digit. It works on the standardised
design X̂ = (1, Z), Z = (X − m)/s (m the column means as rounded, s the population standard
deviations), whose columns have unit size and are nearly orthogonal to the ones, and then maps
Θ back (w = b/s, w0 = ȳ + b0 − m·w):

- the exact path is a QR factorisation of the data [1 | Z | y − ȳ], by chunks of rows (each
  chunk is factorised, then the stacked R factors: the same R as one Householder QR of all
  rows), then an SVD of the small triangular factor, as LAPACK's lstsq does. Ridge is the
  augmented least-squares problem [X̂; (0, diag(√(n·l2_j)/s_j))]·b ≈ [y − ȳ; 0], solved the
  same way. It serves closed_form, and any data whose X̂ is not well conditioned;
- the fast path, for the reference Θ* of gd and sgd on well-conditioned data (κ(X̂) ≤ 10⁴):
  the normal equations of X̂, then one Newton step with the gradient computed from the rows.
  With κ(X̂)²·ε ≤ 2·10⁻⁸, the step brings the error to the level of the gradient's own rounding,
  as accurate as the QR answer, for one cheap pass instead of a factorisation (the bench's gd
  and sgd stay within their speed targets).

The solve runs on the features in grade units whatever `standardize` says (the optimum of R
is the same Θ in both spaces, and the ridge on z-scored weights is l2_j = l2·s_j²), so the
answer does not go through a lossy change of units.

Rank: singular values of X̂ below `RANK_TOLERANCE` × the largest are treated as zero (the
z-scored columns are linearly dependent to twelve digits, below the precision of any grade).
Without ridge, the answer is then the minimum-norm Θ of the space the fit runs in (‖T·Θ‖
least, T the map to that space), as pinv(X̃)·y gives it there: the component along the null
space of X̃ is projected out in that norm.
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.engine.linear import CHUNK_ROWS, CentredStatistics, QuadraticRisk

FloatArray = NDArray[np.float64]

RANK_TOLERANCE = 1e-12
# κ(X̂) up to which the normal equations plus one Newton step are as accurate as QR.
_NORMAL_EQUATIONS_LIMIT = 1e4


@dataclass(frozen=True, eq=False)
class LeastSquares:
    """Θ* in the features' units and what the factorisation tells about the design.

    The standardised design is X̂ = (1, Z), Z = (X − feature_mean)/scale. `r_factor` is the
    (p+1)×(p+1) upper-triangular R of X̂ = Q·R (n rows, unnormalised), present when X̂ has full
    column rank. `singular_values` are those of X̂/√n, all p + 1 (zeros for a rank-deficient
    X̂). `risk` is the risk expanded around a Θ at (or within rounding of) Θ*, from one direct
    pass over the rows.
    """

    theta: FloatArray
    n: int
    feature_mean: FloatArray
    scale: FloatArray
    r_factor: FloatArray | None
    singular_values: FloatArray
    risk: QuadraticRisk


def column_scales(stats: CentredStatistics) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Population standard deviations, 1 for a (numerically) constant column, and which are."""
    scale = np.sqrt(np.maximum(np.diagonal(stats.covariance), 0.0))
    # Below this the shifted column is rounding noise of the mean, not data.
    constant = scale <= 1e-12 * np.maximum(1.0, np.abs(stats.feature_mean))
    return np.where(constant, 1.0, scale), constant


def solve_least_squares(
    features: FloatArray,
    targets: FloatArray,
    stats: CentredStatistics,
    l2: FloatArray,
    *,
    exact: bool,
    norm: FloatArray | None = None,
) -> LeastSquares:
    """Θ* minimising (1/n)‖X̃Θ − y‖² + Σ l2_j·wj² on these rows, in the features' units.

    `exact` forces the QR path (closed_form); otherwise the fast path is taken when X̂ is
    well conditioned. `norm` is T when the minimum-norm answer is wanted for T·Θ (the
    z-scored space), the identity when None.
    """
    scale, constant = column_scales(stats)
    if not exact and not constant.any():
        fast = _normal_equations(features, targets, stats, scale, l2)
        if fast is not None:
            return fast
    return _orthogonal(features, targets, stats, scale, constant, l2, norm)


def _to_theta(coefficients: FloatArray, stats: CentredStatistics, scale: FloatArray) -> FloatArray:
    """(b0, b) of y − t ≈ b0 + Z·b to Θ: w = b/s, w0 = t + b0 − m·w."""
    weights = coefficients[1:] / scale
    intercept = stats.target_mean + coefficients[0] - stats.feature_mean @ weights
    return np.concatenate([[intercept], weights])


def _normal_equations(
    features: FloatArray,
    targets: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    l2: FloatArray,
) -> LeastSquares | None:
    p = scale.shape[0]
    # X̂ᵀX̂/n, from the shifted moments; the ridge L acts on b = s∘w as diag(l2_j/s_j²).
    gram = np.empty((p + 1, p + 1))
    gram[0, 0] = 1.0
    gram[0, 1:] = gram[1:, 0] = stats.shift_mean / scale
    gram[1:, 1:] = stats.second_moment / np.outer(scale, scale)
    eigenvalues = np.linalg.eigvalsh(gram)
    if eigenvalues[0] <= eigenvalues[-1] / _NORMAL_EQUATIONS_LIMIT**2:
        return None
    ridge = np.concatenate([[0.0], l2 / scale**2])
    system = gram + np.diag(ridge)
    rhs = np.concatenate([[stats.target_shift_mean], stats.cross_moment / scale])
    coefficients = np.linalg.solve(system, rhs)
    first = _to_theta(coefficients, stats, scale)
    risk = QuadraticRisk.around(features, targets, stats, first)
    # Newton step on J in (b0, b), whose Hessian is 2·system: ∂J/∂b0 = ∂R/∂δ and
    # ∂J/∂b = (∂R/∂Δw)/s + 2L·b (see QuadraticRisk for the gradient about the shift).
    gradient = risk.centred_gradient_ref
    objective_gradient = np.concatenate(
        [[gradient[0]], gradient[1:] / scale + 2.0 * ridge[1:] * coefficients[1:]]
    )
    coefficients = coefficients - np.linalg.solve(system, objective_gradient / 2.0)
    theta = _to_theta(coefficients, stats, scale)
    r_factor = np.linalg.cholesky(stats.n * gram).T.astype(np.float64)
    singular_values = np.sqrt(eigenvalues[::-1])
    return LeastSquares(theta, stats.n, stats.feature_mean, scale, r_factor, singular_values, risk)


def _orthogonal(
    features: FloatArray,
    targets: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    constant: NDArray[np.bool_],
    l2: FloatArray,
    norm: FloatArray | None,
) -> LeastSquares:
    n, p = features.shape
    triangle = _triangular_factor(features, targets, stats, scale, constant)
    r_part, rhs = triangle[:, : p + 1], triangle[:, p + 1]
    matrix, vector = r_part, rhs
    ridge = bool((l2 > 0).any())
    if ridge:
        penalty = np.zeros((p, p + 1))
        penalty[:, 1:] = np.diag(np.sqrt(n * l2) / scale)
        matrix = np.vstack([r_part, penalty])
        vector = np.concatenate([rhs, np.zeros(p)])
    left, sigma, right_t = np.linalg.svd(matrix, full_matrices=True)
    rank = int(np.count_nonzero(sigma > RANK_TOLERANCE * sigma[0]))
    coefficients = right_t[:rank].T @ ((left[:, :rank].T @ vector) / sigma[:rank])
    theta = _to_theta(coefficients, stats, scale)
    if rank < p + 1 and not ridge:
        theta = _minimum_norm(theta, right_t[rank:], stats, scale, norm)
    # The correction goes through (AᵀA)⁻¹, whose rounding grows as κ²: only where that is small.
    if rank == p + 1 and sigma[0] <= _NORMAL_EQUATIONS_LIMIT * sigma[-1]:
        inverse_gram = right_t.T @ (right_t / sigma[:, None] ** 2)
        theta = _refine(features, targets, theta, stats, scale, l2, inverse_gram)

    design_sigma = np.zeros(p + 1)
    computed = np.linalg.svd(r_part, compute_uv=False)
    design_sigma[: computed.shape[0]] = computed
    design_sigma /= math.sqrt(n)
    full_rank = r_part.shape[0] > p and design_sigma[-1] > RANK_TOLERANCE * design_sigma[0]
    r_factor = r_part[: p + 1].copy() if full_rank else None
    risk = QuadraticRisk.around(features, targets, stats, theta)
    return LeastSquares(theta, n, stats.feature_mean, scale, r_factor, design_sigma, risk)


def _refine(
    features: FloatArray,
    targets: FloatArray,
    theta: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    l2: FloatArray,
    inverse_gram: FloatArray,
) -> FloatArray:
    """One step of iterative refinement with residuals in extended precision.

    Θ's intercept is a difference of large terms (ȳ + b0 − m·w): on Wampler1, an intercept of 1
    next to grades of 3·10⁶, that rounding alone caps it near 9.5 digits. The residuals
    r = y − X̃Θ computed in long double, and the correction δb = (X̂ᵀX̂ + n·L)⁻¹·(X̂ᵀr − n·L·b)
    solved with the factorisation's (AᵀA)⁻¹ = V·Σ⁻²·Vᵀ, add a small δΘ to Θ, so only the
    correction carries rounding: the intercept comes out to ~14 digits. Used when κ(A) ≤ 10⁴,
    so that the correction's own error (κ²·ε relative to it) is negligible.
    """
    wide = np.longdouble
    n, p = features.shape
    weights = theta[1:].astype(wide)
    gradient = np.zeros(p + 1)
    for start in range(0, n, CHUNK_ROWS):
        rows = features[start : start + CHUNK_ROWS]
        residuals = (
            targets[start : start + CHUNK_ROWS].astype(wide)
            - rows.astype(wide) @ weights
            - wide(theta[0])
        ).astype(np.float64)
        gradient[0] += residuals.sum()
        gradient[1:] += ((rows - stats.feature_mean) / scale).T @ residuals
    gradient[1:] -= n * l2 / scale * theta[1:]
    step = inverse_gram @ gradient
    step_weights = step[1:] / scale
    refined: FloatArray = theta + np.concatenate(
        [[step[0] - stats.feature_mean @ step_weights], step_weights]
    )
    return refined


def _triangular_factor(
    features: FloatArray,
    targets: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    constant: NDArray[np.bool_],
) -> FloatArray:
    """R of the QR factorisation of [1 | Z | y − t], chunk by chunk (a tall-skinny QR).

    The column of ones stays in: the shifted columns' means are not exactly zero (the shift is
    the mean rounded), and leaving the intercept to the factorisation costs nothing."""
    n, p = features.shape
    factors = []
    for start in range(0, n, CHUNK_ROWS):
        rows = features[start : start + CHUNK_ROWS]
        block = np.empty((rows.shape[0], p + 2))
        block[:, 0] = 1.0
        np.subtract(rows, stats.feature_mean, out=block[:, 1 : p + 1])
        block[:, 1 : p + 1] /= scale
        block[:, 1 : p + 1][:, constant] = 0.0
        block[:, p + 1] = targets[start : start + CHUNK_ROWS] - stats.target_mean
        factors.append(_r_of(block))
    return factors[0] if len(factors) == 1 else _r_of(np.vstack(factors))


def _r_of(matrix: FloatArray) -> FloatArray:
    triangle: FloatArray = np.linalg.qr(matrix, mode="r")  # type: ignore[assignment]
    return triangle


def _minimum_norm(
    theta: FloatArray,
    null_space: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    norm: FloatArray | None,
) -> FloatArray:
    """The solution Θ + B·c of least ‖T·Θ‖, B a basis of the null space of X̃ = (1, X).

    A null vector (u0, u) of X̂ = (1, Z) gives v = u/s and X̃·(u0 − m·v, v) = 0: these span
    the null space of X̃.
    """
    weights = null_space[:, 1:] / scale
    basis = np.column_stack([null_space[:, 0] - weights @ stats.feature_mean, weights]).T
    if norm is None:
        coefficients = np.linalg.lstsq(basis, theta, rcond=None)[0]
    else:
        coefficients = np.linalg.lstsq(norm @ basis, norm @ theta, rcond=None)[0]
    projected: FloatArray = theta - basis @ coefficients
    return projected


def condition_number(singular_values: FloatArray) -> float:
    """κ of the standardised design (1, Z), from its singular values; inf when the solve
    treated the grades as collinear (a singular value below RANK_TOLERANCE × the largest)."""
    largest, smallest = float(singular_values[0]), float(singular_values[-1])
    return math.inf if smallest <= RANK_TOLERANCE * largest else largest / smallest


def hessian_condition(solution: LeastSquares, l2: float, *, centred: bool) -> float:
    """κ of the Hessian of J that gd iterates against: of X̃ᵀX̃/n + l2·D for the features as
    solved (centred=False), or for their z-scores (centred=True), from the small factor:
    X̃/√n = Q·(R/√n)·[[1, mᵀ], [0, S]]."""
    if solution.r_factor is None:
        return math.inf
    p = solution.r_factor.shape[0] - 1
    factor = solution.r_factor / math.sqrt(solution.n)
    if not centred:
        mixing = np.eye(p + 1)
        mixing[0, 1:] = solution.feature_mean
        mixing[1:, 1:] = np.diag(solution.scale)
        factor = factor @ mixing
    if l2 > 0:
        factor = np.vstack([factor, math.sqrt(l2) * np.eye(p + 1)[1:]])
    sigma = np.linalg.svd(factor, compute_uv=False)
    if sigma[-1] <= 0:
        return math.inf
    return float((sigma[0] / sigma[-1]) ** 2)
