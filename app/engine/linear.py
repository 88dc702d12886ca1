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


def moment_vector(features: FloatArray, targets: FloatArray) -> FloatArray:
    """X̃ᵀy / n."""
    return np.concatenate([[targets.mean()], features.T @ targets / targets.shape[0]])


def largest_eigenvalue(symmetric: FloatArray) -> float:
    return float(np.linalg.eigvalsh(symmetric)[-1])


def solve_pseudo_inverse(symmetric: FloatArray, rhs: FloatArray) -> FloatArray:
    """pinv(S) @ rhs for a symmetric positive semi-definite S: the minimum-norm solution."""
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    cutoff = _RANK_TOLERANCE * max(float(eigenvalues[-1]), 0.0)
    inverse = np.zeros_like(eigenvalues)
    kept = eigenvalues > cutoff
    inverse[kept] = 1.0 / eigenvalues[kept]
    return eigenvectors @ (inverse * (eigenvectors.T @ rhs))


@dataclass(frozen=True)
class QuadraticRisk:
    """R(Θ) on fixed rows as an exact quadratic in Θ, so a point costs O(p²), not O(n·p).

    R(Θ) = R(Θref) + ∇R(Θref)ᵀΔ + ΔᵀGΔ and ∇R(Θ) = ∇R(Θref) + 2GΔ, with Δ = Θ − Θref and
    G = X̃ᵀX̃/n. R(Θref) and ∇R(Θref) come from one direct pass over the rows; expanding around
    a Θref near the optimum avoids the cancellation of the textbook ΘᵀX̃ᵀX̃Θ − 2ΘᵀX̃ᵀy + yᵀy
    when R is small next to yᵀy/n.
    """

    gram: FloatArray
    theta_ref: FloatArray
    risk_ref: float
    gradient_ref: FloatArray

    @classmethod
    def around(
        cls, features: FloatArray, targets: FloatArray, gram: FloatArray, theta_ref: FloatArray
    ) -> "QuadraticRisk":
        residuals = features @ theta_ref[1:]
        residuals += theta_ref[0] - targets
        n = targets.shape[0]
        gradient = 2.0 / n * np.concatenate([[residuals.sum()], features.T @ residuals])
        return cls(gram, theta_ref, float(residuals @ residuals / n), gradient)

    def risk_and_gradient(self, thetas: FloatArray) -> tuple[FloatArray, FloatArray]:
        """R and ∇R at each row of `thetas` (k, p+1)."""
        delta = thetas - self.theta_ref
        curvature = delta @ self.gram
        risks = np.einsum("ki,ki->k", delta, curvature)
        risks += delta @ self.gradient_ref
        risks += self.risk_ref
        # In place: broadcasting over a short last axis is slow, so spare the temporaries.
        curvature *= 2.0
        curvature += self.gradient_ref
        return risks, curvature

    def risk(self, thetas: FloatArray) -> FloatArray:
        return self.risk_and_gradient(thetas)[0]
