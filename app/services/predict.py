"""Predictions h_Θ(x) = w0 + Σ wj·xj for a batch of pupils, as one numpy operation, from a
version held in memory (`VersionSnapshot`); the maths is the engine's. Reading the pupils is
batches.py's, writing the answer answers.py's."""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from app.db.models import ModelVersion
from app.engine import IntervalDesign, contributions, interval_half_width

Array = npt.NDArray[np.float64]

# Output is rounded to a millionth of a grade point: 0.33·38 is written 12.54, not
# 12.540000000000001. Contributions are rounded alike, so they add up to `raw` within 1e-5.
DECIMALS = 6


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
    theta: Array
    interval_design: IntervalDesign | None
    residual_std: float | None
    n_train: int | None
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
            theta=_frozen(version.theta),
            interval_design=None
            if version.interval_design is None
            else IntervalDesign.from_json(version.interval_design),
            residual_std=version.residual_std,
            n_train=version.n_train,
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


@dataclass(frozen=True)
class Predictions:
    raw: Array
    prediction: Array
    interval_low: Array | None
    interval_high: Array | None
    contributions: Array  # (n, p): wj·xj; the intercept is the same for every pupil
    extrapolated: npt.NDArray[np.bool_]


def predict(snapshot: VersionSnapshot, values: Array) -> Predictions:
    raw, terms = contributions(snapshot.theta, values)
    prediction = np.clip(raw, snapshot.grade_min, snapshot.grade_max)
    low = high = None
    half_width = interval_half_width(
        values,
        design=snapshot.interval_design,
        residual_std=snapshot.residual_std,
        n_train=snapshot.n_train,
    )
    if half_width is not None:
        # The interval is for a grade, so it is clipped into the grade range too.
        low = np.clip(raw - half_width, snapshot.grade_min, snapshot.grade_max)
        high = np.clip(raw + half_width, snapshot.grade_min, snapshot.grade_max)
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
        contributions=np.round(terms, DECIMALS),
        extrapolated=extrapolated,
    )
