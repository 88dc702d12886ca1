"""Predictions h_Θ(x) = w0 + Σ wj·xj for a batch of pupils, as one numpy operation, from a
version held in memory (`VersionSnapshot`); the maths is the engine's. Reading the pupils is
batches.py's, writing the answer answers.py's."""

import math
from dataclasses import dataclass, field
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
    # The same figures as Python floats, for one pupil answered without numpy (predict_one).
    plain: "PlainVersion" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", PlainVersion.of(self))

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


@dataclass(frozen=True)
class PlainVersion:
    weights: tuple[float, ...]
    low: float
    high: float
    sigma_half_width: float | None  # the interval of a version with a hand-set σ only
    feature_min: tuple[float, ...] | None
    feature_max: tuple[float, ...] | None

    @classmethod
    def of(cls, snapshot: "VersionSnapshot") -> "PlainVersion":
        sigma = None
        if snapshot.interval_design is None and snapshot.residual_std is not None:
            one = np.zeros((1, len(snapshot.features)))
            width = interval_half_width(
                one, design=None, residual_std=snapshot.residual_std, n_train=snapshot.n_train
            )
            assert width is not None
            sigma = float(width[0])
        return cls(
            weights=tuple(snapshot.theta[1:].tolist()),
            low=snapshot.grade_min,
            high=snapshot.grade_max,
            sigma_half_width=sigma,
            feature_min=None
            if snapshot.feature_min is None
            else tuple(snapshot.feature_min.tolist()),
            feature_max=None
            if snapshot.feature_max is None
            else tuple(snapshot.feature_max.tolist()),
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
    contributions: Array | None  # (n, p): wj·xj; the intercept is the same for every pupil
    extrapolated: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class OnePrediction:
    """One pupil's figures, as Python floats equal to what ``predict`` gives."""

    raw: float
    prediction: float
    interval: tuple[float, float] | None
    contributions: list[float] | None
    extrapolated: bool


_SCALE = 10.0**DECIMALS  # computed once: seven roundings a pupil, two powers each


def _round(x: float) -> float:
    """``np.round(x, DECIMALS)`` of one float: x·10⁶ rounded half to even, divided back."""
    scaled = x * _SCALE
    if not math.isfinite(scaled):
        return scaled / _SCALE
    # rint keeps the sign of a value rounded to zero (-0.0), Python's round does not.
    rounded = math.copysign(float(round(scaled)), scaled)
    return rounded / _SCALE


def _clip(x: float, low: float, high: float) -> float:
    return low if x < low else high if x > high else x


def predict_one(snapshot: VersionSnapshot, row: list[float], *, full: bool = True) -> OnePrediction:
    """``predict`` for one pupil without numpy's per-call overhead. The terms are added in
    the engine's order (one after the other, then w0: ``contributions``), so every figure
    is the same."""
    plain = snapshot.plain
    terms = [x * w for x, w in zip(row, plain.weights, strict=True)]
    total = terms[0]
    for term in terms[1:]:
        total += term
    raw = total + snapshot.intercept
    interval = None
    if full:
        half: float | None = plain.sigma_half_width
        if snapshot.interval_design is not None:
            half = float(snapshot.interval_design.half_width(np.asarray([row]))[0])
        if half is not None:
            interval = (
                _round(_clip(raw - half, plain.low, plain.high)),
                _round(_clip(raw + half, plain.low, plain.high)),
            )
    extrapolated = False
    if plain.feature_min is not None and plain.feature_max is not None:
        extrapolated = any(
            x < lo or x > hi
            for x, lo, hi in zip(row, plain.feature_min, plain.feature_max, strict=True)
        )
    return OnePrediction(
        raw=_round(raw),
        prediction=_round(_clip(raw, plain.low, plain.high)),
        interval=interval,
        contributions=[_round(t) for t in terms] if full else None,
        extrapolated=extrapolated,
    )


def predict(snapshot: VersionSnapshot, values: Array, *, full: bool = True) -> Predictions:
    """Every pupil's figures; without `full`, no interval and no contributions."""
    raw, terms = contributions(snapshot.theta, values)
    prediction = np.clip(raw, snapshot.grade_min, snapshot.grade_max)
    low = high = None
    half_width = None
    if full:
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
        contributions=np.round(terms, DECIMALS) if full else None,
        extrapolated=extrapolated,
    )
