"""The least-squares optimum Θ* of J(Θ) = R(Θ) + Σ_{j≥1} l2_j·wj², accurate on hard data.

The solve never forms X̃ᵀX̃ of the data as given: that squares the condition number, and on
NIST's Longley or Wampler problems it leaves no correct digit. It works on the centred,
column-scaled design Z = (X − x̄)/s instead (s the population standard deviations), where the
intercept decouples (w0 = ȳ − x̄·w) and the columns have unit size, and then maps Θ back:

- the exact path is a QR factorisation of the data [Z | y − ȳ], by chunks of rows (each chunk
  is factorised, then the stacked R factors; the same R as one Householder QR of all rows),
  then an SVD of the small triangular factor, as LAPACK's lstsq does. Ridge is the augmented
  least-squares problem [Z; diag(√(n·l2_j)/s_j)]·a ≈ [y − ȳ; 0], solved the same way. It serves
  closed_form, and any data whose Z is not well conditioned;
- the fast path, for the reference Θ* of gd and sgd on well-conditioned data (κ(Z) ≤ 10⁴):
  the centred normal equations, then one Newton step with the gradient computed from the rows.
  With κ(Z)²·ε ≤ 2·10⁻⁸, the step brings the error to the level of the gradient's own rounding,
  as accurate as the QR answer, at the cost of one cheap pass instead of a factorisation.

The solve runs on the features in grade units whatever `standardize` says (the optimum of R
is the same Θ in both spaces, and the ridge on z-scored weights is l2_j = l2·s_j²), so the
answer does not go through a lossy change of units.

Rank: singular values of Z below `RANK_TOLERANCE` × the largest are treated as zero (the
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
# κ(Z) up to which the normal equations plus one Newton step are as accurate as QR.
_NORMAL_EQUATIONS_LIMIT = 1e4


@dataclass(frozen=True, eq=False)
class LeastSquares:
    """Θ* in the fitting space and what the factorisation tells about the design.

    `r_factor` is the upper-triangular R of Z = Q·R (Z = (X − feature_mean)/scale, n rows
    unnormalised), present when Z has full column rank. `singular_values` are those of Z/√n,
    all p of them (zeros for a rank-deficient Z). `risk` is the risk expanded around a Θ at
    (or within rounding of) Θ*, from one direct pass over the rows.
    """

    theta: FloatArray
    n: int
    feature_mean: FloatArray
    scale: FloatArray
    r_factor: FloatArray | None
    singular_values: FloatArray
    risk: QuadraticRisk

    @property
    def full_rank(self) -> bool:
        return self.r_factor is not None


def column_scales(stats: CentredStatistics) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Population standard deviations, 1 for a (numerically) constant column, and which are."""
    scale = np.sqrt(np.maximum(np.diagonal(stats.covariance), 0.0))
    # Below this the centred column is rounding noise of the mean, not data.
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

    `exact` forces the QR path (closed_form); otherwise the fast path is taken when Z is
    well conditioned. `norm` is T when the minimum-norm answer is wanted for T·Θ (the
    z-scored space), the identity when None.
    """
    scale, constant = column_scales(stats)
    if not exact and not constant.any():
        fast = _normal_equations(features, targets, stats, scale, l2)
        if fast is not None:
            return fast
    return _orthogonal(features, targets, stats, scale, constant, l2, norm)


def _normal_equations(
    features: FloatArray,
    targets: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    l2: FloatArray,
) -> LeastSquares | None:
    correlation = stats.covariance / np.outer(scale, scale)
    eigenvalues = np.linalg.eigvalsh(correlation)
    if eigenvalues[0] <= eigenvalues[-1] / _NORMAL_EQUATIONS_LIMIT**2:
        return None
    n = stats.n
    # In z units: (C_s + L·S⁻²)·a = X_cᵀy_c/(n·s); w = a/s; the intercept decouples.
    system = correlation + np.diag(l2 / scale**2)
    weights = np.linalg.solve(system, stats.cross / scale) / scale
    first = np.concatenate([[stats.target_mean - stats.feature_mean @ weights], weights])
    risk = QuadraticRisk.around(features, targets, stats, first)
    # Newton step on J: its Hessian about the means is block-diagonal, 2 on the centred
    # intercept δ and 2(C + L) on w, so each block is solved on its own.
    gradient = risk.centred_gradient_ref
    step_weights = (
        np.linalg.solve(system, (gradient[1:] + 2.0 * l2 * weights) / (2.0 * scale)) / scale
    )
    step_intercept = gradient[0] / 2.0 - stats.feature_mean @ step_weights
    theta = first - np.concatenate([[step_intercept], step_weights])
    r_factor = np.linalg.cholesky(n * correlation).T.astype(np.float64)
    singular_values = np.sqrt(eigenvalues[::-1])
    return LeastSquares(theta, n, stats.feature_mean, scale, r_factor, singular_values, risk)


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
    r_part, rhs = triangle[:, :p], triangle[:, p]
    matrix, vector = r_part, rhs
    ridge = bool((l2 > 0).any())
    if ridge:
        matrix = np.vstack([r_part, np.diag(np.sqrt(n * l2) / scale)])
        vector = np.concatenate([rhs, np.zeros(p)])
    left, sigma, right_t = np.linalg.svd(matrix, full_matrices=True)
    rank = int(np.count_nonzero(sigma > RANK_TOLERANCE * sigma[0])) if sigma.size else 0
    coefficients = right_t[:rank].T @ ((left[:, :rank].T @ vector) / sigma[:rank])
    weights = coefficients / scale
    theta = np.concatenate([[stats.target_mean - stats.feature_mean @ weights], weights])
    if not ridge and rank < p:
        theta = _minimum_norm(theta, right_t[rank:], scale, stats.feature_mean, norm)

    design_sigma = np.zeros(p)
    design_sigma[: min(triangle.shape[0], p)] = np.linalg.svd(r_part, compute_uv=False)[:p]
    design_sigma /= math.sqrt(n)
    full_rank = r_part.shape[0] >= p and design_sigma[-1] > RANK_TOLERANCE * design_sigma[0]
    r_factor = r_part[:p].copy() if full_rank else None
    risk = QuadraticRisk.around(features, targets, stats, theta)
    return LeastSquares(theta, n, stats.feature_mean, scale, r_factor, design_sigma, risk)


def _triangular_factor(
    features: FloatArray,
    targets: FloatArray,
    stats: CentredStatistics,
    scale: FloatArray,
    constant: NDArray[np.bool_],
) -> FloatArray:
    """R of the QR factorisation of [Z | y − ȳ], chunk by chunk (a tall-skinny QR)."""
    n, p = features.shape
    factors = []
    for start in range(0, n, CHUNK_ROWS):
        rows = features[start : start + CHUNK_ROWS]
        block = np.empty((rows.shape[0], p + 1))
        np.subtract(rows, stats.feature_mean, out=block[:, :p])
        block[:, :p] /= scale
        block[:, :p][:, constant] = 0.0
        block[:, p] = targets[start : start + CHUNK_ROWS] - stats.target_mean
        factors.append(_r_of(block))
    return factors[0] if len(factors) == 1 else _r_of(np.vstack(factors))


def _r_of(matrix: FloatArray) -> FloatArray:
    triangle: FloatArray = np.linalg.qr(matrix, mode="r")  # type: ignore[assignment]
    return triangle


def _minimum_norm(
    theta: FloatArray,
    null_z: FloatArray,
    scale: FloatArray,
    mean: FloatArray,
    norm: FloatArray | None,
) -> FloatArray:
    """The solution Θ + B·c of least ‖T·Θ‖, B a basis of the null space of X̃ = (1, X).

    A null vector u of Z gives v = u/s with X_c·v = 0, so X̃·(−x̄·v, v) = 0: these span the
    null space of X̃.
    """
    weights = null_z / scale
    basis = np.column_stack([-(weights @ mean), weights]).T
    if norm is None:
        coefficients = np.linalg.lstsq(basis, theta, rcond=None)[0]
    else:
        coefficients = np.linalg.lstsq(norm @ basis, norm @ theta, rcond=None)[0]
    projected: FloatArray = theta - basis @ coefficients
    return projected


def condition_number(singular_values: FloatArray) -> float:
    """κ of the standardised design (1, Z/√n): its singular values are 1 and those of Z/√n."""
    largest = max(1.0, float(singular_values[0]))
    smallest = min(1.0, float(singular_values[-1]))
    return math.inf if smallest <= 0 else largest / smallest


def hessian_condition(solution: LeastSquares, l2: float, *, centred: bool) -> float:
    """κ of the Hessian of J that gd iterates against: of X̃ᵀX̃/n + l2·D for the features as
    solved (centred=False), or for their z-scores (centred=True), from the small factor:
    X̃/√n = Q·[[1, 0], [0, R/√n]]·[[1, x̄ᵀ], [0, S]]."""
    if solution.r_factor is None:
        return math.inf
    p = solution.r_factor.shape[0]
    factor = np.zeros((p + 1, p + 1))
    factor[0, 0] = 1.0
    factor[1:, 1:] = solution.r_factor / math.sqrt(solution.n)
    if not centred:
        mixing = np.eye(p + 1)
        mixing[0, 1:] = solution.feature_mean
        mixing[1:, 1:] = np.diag(solution.scale)
        factor = factor @ mixing
    if l2 > 0:
        penalty = math.sqrt(l2) * np.eye(p + 1)[1:]
        factor = np.vstack([factor, penalty])
    sigma = np.linalg.svd(factor, compute_uv=False)
    if sigma[-1] <= 0:
        return math.inf
    return float((sigma[0] / sigma[-1]) ** 2)
