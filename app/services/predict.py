"""Predictions h_Θ(x) = w0 + Σ wj·xj for a batch of pupils, as one numpy operation.

Parsing is strict (the version's features exactly, JSON numbers only, finite, inside
the grade range), so a school's mistake is a 422 naming the pupil and the column, never
a silently wrong grade.
"""

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from app.db.models import ModelVersion

Array = npt.NDArray[np.float64]

# Output is rounded to a millionth of a grade point: 0.33·38 is written 12.54, not
# 12.540000000000001. Contributions are rounded alike, so they add up to `raw` within 1e-5.
DECIMALS = 6
Z_975 = 1.959963984540054


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


@dataclass(frozen=True)
class VersionSnapshot:
    """What /predict needs of one model version; immutable, shared by concurrent requests."""

    model: str
    version: int
    features: tuple[str, ...]
    target: str
    grade_min: float
    grade_max: float
    intercept: float
    weights: Array
    interval_half_width: float | None
    feature_min: Array | None
    feature_max: Array | None
    trained_at: str
    cohort_id: str | None

    @classmethod
    def of(cls, model_name: str, version: ModelVersion) -> "VersionSnapshot":
        return cls(
            model=model_name,
            version=version.version,
            features=tuple(version.features),
            target=version.target,
            grade_min=version.grade_min,
            grade_max=version.grade_max,
            intercept=float(version.theta[0]),
            weights=_frozen(version.theta[1:]),
            interval_half_width=interval_half_width(
                version.residual_std, version.n_train, len(version.features)
            ),
            feature_min=None if version.feature_min is None else _frozen(version.feature_min),
            feature_max=None if version.feature_max is None else _frozen(version.feature_max),
            trained_at=_iso(version.created_at),
            cohort_id=None if version.cohort_id is None else str(version.cohort_id),
        )


def _frozen(values: list[float]) -> Array:
    array = np.asarray(values, dtype=np.float64)
    array.flags.writeable = False
    return array


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def interval_half_width(residual_std: float | None, n_train: int | None, p: int) -> float | None:
    """Half-width of the 95% prediction interval: t(0.975, n − p − 1)·σ, or 1.96·σ when
    the degrees of freedom are unknown (hand-set σ) or not positive.

    It leaves out the uncertainty of Θ itself (the √(1 + x₀ᵀ(XᵀX)⁻¹x₀) factor needs the
    training design matrix, which is not kept): slightly narrow for small cohorts.
    """
    if residual_std is None:
        return None
    dof = None if n_train is None else n_train - p - 1
    multiplier = student_t_975(dof) if dof is not None and dof >= 1 else Z_975
    return multiplier * residual_std


@dataclass(frozen=True)
class Predictions:
    raw: Array
    prediction: Array
    interval_low: Array | None
    interval_high: Array | None
    contributions: Array  # (n, p): wj·xj; the intercept is the same for every pupil
    extrapolated: npt.NDArray[np.bool_]


def predict(snapshot: VersionSnapshot, values: Array) -> Predictions:
    contributions = values * snapshot.weights
    raw = contributions.sum(axis=1) + snapshot.intercept
    prediction = np.clip(raw, snapshot.grade_min, snapshot.grade_max)
    low = high = None
    if snapshot.interval_half_width is not None:
        # The interval is for a grade, so it is clipped into the grade range too.
        low = np.clip(raw - snapshot.interval_half_width, snapshot.grade_min, snapshot.grade_max)
        high = np.clip(raw + snapshot.interval_half_width, snapshot.grade_min, snapshot.grade_max)
    if snapshot.feature_min is not None and snapshot.feature_max is not None:
        outside = (values < snapshot.feature_min) | (values > snapshot.feature_max)
        extrapolated: npt.NDArray[np.bool_] = np.asarray(outside.any(axis=1))
    else:
        extrapolated = np.zeros(values.shape[0], dtype=np.bool_)
    return Predictions(
        raw=np.round(raw, DECIMALS),
        prediction=np.round(prediction, DECIMALS),
        interval_low=None if low is None else np.round(low, DECIMALS),
        interval_high=None if high is None else np.round(high, DECIMALS),
        contributions=np.round(contributions, DECIMALS),
        extrapolated=extrapolated,
    )
