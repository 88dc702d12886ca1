"""95% prediction intervals for a new pupil: the OLS interval, and Student's t without scipy.

For Θ fitted by least squares on n pupils and p grades, a new pupil's exam grade lies in
ŷ ± t(n − p − 1, 0.975)·s·√(1 + h(x)) with probability 0.95 when the noise is Gaussian, where
s² = SSE/(n − p − 1) and h(x) = x̃ᵀ(X̃ᵀX̃)⁻¹x̃ is the new pupil's leverage. With the
standardised training design X̂ = (1, (X − m)/s_col) = Q·R, h(x) = ‖R⁻ᵀ(1, (x − m)/s_col)‖²:
R is well conditioned where X̃ᵀX̃ is not, so it is what a version stores (`IntervalDesign`).
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

Z_975 = 1.959963984540054

IntervalKind = Literal["ols", "sigma"]


def student_t_975(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom, without scipy.

    Up to 200 dof: bisection on the exact CDF of an integer-dof t (Abramowitz & Stegun
    26.7.3-4, P(|T| < t) as a finite sum in cos²θ); beyond, the Cornish-Fisher expansion
    around the normal quantile (error below 1e-7 there).
    """
    if dof < 1:
        raise ValueError("dof must be at least 1")
    if dof > 200:
        z = Z_975
        nu = float(dof)
        return (
            z
            + (z**3 + z) / (4 * nu)
            + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * nu**3)
        )

    def central(t: float) -> float:
        theta = math.atan(t / math.sqrt(dof))
        c2 = math.cos(theta) ** 2
        if dof % 2 == 0:
            total, term = 1.0, 1.0
            for k in range(2, dof - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
            return math.sin(theta) * total
        if dof == 1:
            return 2 * theta / math.pi
        total, term = 1.0, 1.0
        for k in range(3, dof - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)

    low, high = 0.0, 20.0  # t(1) at 0.975 is 12.7
    for _ in range(60):
        middle = (low + high) / 2
        if central(middle) < 0.95:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True, eq=False)
class IntervalDesign:
    """What the OLS interval needs of the training rows: n, s, the column means and scales
    (grade units) and the (p+1)×(p+1) upper-triangular R of the standardised design."""

    n_train: int
    residual_std: float
    feature_mean: FloatArray
    feature_scale: FloatArray
    r_factor: FloatArray

    @property
    def n_features(self) -> int:
        return int(self.feature_mean.shape[0])

    def leverage(self, X: ArrayLike) -> FloatArray:
        """h(x) = x̃ᵀ(X̃ᵀX̃)⁻¹x̃ for every row of X, as ‖R⁻ᵀ(1, z)‖²."""
        z = (np.asarray(X, dtype=np.float64) - self.feature_mean) / self.feature_scale
        design = np.ones((self.n_features + 1, z.shape[0]))
        design[1:] = z.T
        solved = np.linalg.solve(self.r_factor.T, design)
        leverage: FloatArray = np.einsum("ij,ij->j", solved, solved)
        return leverage

    def half_width(self, X: ArrayLike) -> FloatArray:
        """t(n − p − 1, 0.975)·s·√(1 + h(x)) for every row of X."""
        multiplier = student_t_975(self.n_train - self.n_features - 1) * self.residual_std
        half: FloatArray = multiplier * np.sqrt(1.0 + self.leverage(X))
        return half

    def to_json(self) -> dict[str, Any]:
        """Plain numbers: every float64 survives a JSON round trip exactly (repr is exact)."""
        return {
            "n_train": self.n_train,
            "residual_std": self.residual_std,
            "feature_mean": self.feature_mean.tolist(),
            "feature_scale": self.feature_scale.tolist(),
            "r_factor": self.r_factor.tolist(),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> "IntervalDesign":
        def frozen(values: Any) -> FloatArray:
            array = np.asarray(values, dtype=np.float64)
            array.flags.writeable = False
            return array

        return cls(
            n_train=int(document["n_train"]),
            residual_std=float(document["residual_std"]),
            feature_mean=frozen(document["feature_mean"]),
            feature_scale=frozen(document["feature_scale"]),
            r_factor=frozen(document["r_factor"]),
        )


def interval_half_width(
    X: FloatArray,
    *,
    design: IntervalDesign | None,
    residual_std: float | None,
    n_train: int | None,
) -> FloatArray | None:
    """The half-width of the 95% prediction interval for every row of X, or None.

    With the training design: the OLS interval, t·s·√(1 + h(x)), exact for Gaussian noise.
    Without it but with a hand-set σ: t·σ (1.96·σ without n_train), Θ taken as exact. Versions
    fitted with l2, or by gd/sgd short of the least-squares Θ, store neither: no interval.
    """
    kind = interval_kind(design, residual_std)
    if kind == "ols":
        assert design is not None
        return design.half_width(X)
    if kind == "sigma":
        assert residual_std is not None
        return np.full(X.shape[0], sigma_half_width(residual_std, n_train, X.shape[1]))
    return None


def interval_kind(design: object | None, residual_std: float | None) -> IntervalKind | None:
    """'ols' with a training design, 'sigma' with only a hand-set σ, None with neither."""
    if design is not None:
        return "ols"
    return None if residual_std is None else "sigma"


def sigma_half_width(residual_std: float, n_train: int | None, n_features: int) -> float:
    """t(0.975, n − p − 1)·σ, or 1.96·σ when the degrees of freedom are unknown or not
    positive: the interval of a Θ taken as exact, with only the noise σ uncertain (a hand-set
    Θ, which comes with no training design to measure its own uncertainty)."""
    dof = None if n_train is None else n_train - n_features - 1
    multiplier = student_t_975(dof) if dof is not None and dof >= 1 else Z_975
    return multiplier * residual_std
