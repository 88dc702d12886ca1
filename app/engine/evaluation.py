"""How well a fitted Θ predicts pupils it never saw: errors, bias, interval coverage, by group.

For a later cohort (X, y) and a version's Θ, the prediction is ŷ = h_Θ(x) clipped into the
grade range, as /predict answers it. The error of a pupil is e = ŷ − y (positive: the
version over-predicts), so mean_error is the version's bias on that cohort.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.engine.intervals import IntervalDesign, interval_half_width
from app.engine.linear import predict

FloatArray = NDArray[np.float64]

SAMPLE_SIZE = 500
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class EvaluatedVersion:
    """What the evaluation needs of a version: Θ, its grade range, its interval, its
    training range (to count extrapolated pupils)."""

    theta: FloatArray
    grade_range: tuple[float, float]
    interval_design: IntervalDesign | None
    residual_std: float | None
    n_train: int | None
    feature_min: FloatArray | None
    feature_max: FloatArray | None


def _errors(errors: FloatArray, covered: NDArray[np.bool_] | None) -> dict[str, Any]:
    n = int(errors.shape[0])
    return {
        "n": n,
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "mean_error": float(np.mean(errors)),
        "interval_coverage": None if covered is None else float(np.mean(covered)),
    }


def calibration(predicted: FloatArray, actual: FloatArray) -> list[dict[str, float | int]]:
    """Mean predicted and mean actual grade per decile of the prediction (fewer bins with
    fewer than ten pupils): pupils sorted by ŷ, cut into near-equal bins."""
    order = np.argsort(predicted, kind="stable")
    bins = np.array_split(order, min(CALIBRATION_BINS, order.shape[0]))
    return [
        {
            "bin": index + 1,
            "n": int(rows.shape[0]),
            "mean_predicted": float(np.mean(predicted[rows])),
            "mean_actual": float(np.mean(actual[rows])),
        }
        for index, rows in enumerate(bins)
    ]


def sample_pairs(predicted: FloatArray, actual: FloatArray) -> list[tuple[float, float]]:
    """Up to SAMPLE_SIZE (ŷ, y) pairs evenly spread over the rows, for plots."""
    n = predicted.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_SIZE)).round().astype(np.int64))
    return [(float(p), float(a)) for p, a in zip(predicted[rows], actual[rows], strict=True)]


def evaluate(
    version: EvaluatedVersion,
    X: FloatArray,
    y: FloatArray,
    groups: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The figures of Θ on (X, y): n, mse, rmse, mae, r2, mean_error, interval_coverage (None
    without an interval), extrapolated, by_group (pupils without a label are in no group),
    calibration and sample. Requires at least one row."""
    low, high = version.grade_range
    raw = predict(version.theta, X)
    predicted: FloatArray = np.clip(raw, low, high)
    errors = predicted - y
    half = interval_half_width(
        X,
        design=version.interval_design,
        residual_std=version.residual_std,
        n_train=version.n_train,
    )
    covered = None
    if half is not None:
        covered = (np.clip(raw - half, low, high) <= y) & (y <= np.clip(raw + half, low, high))
    extrapolated = 0
    if version.feature_min is not None and version.feature_max is not None:
        outside = (version.feature_min > X) | (version.feature_max < X)
        extrapolated = int(np.count_nonzero(outside.any(axis=1)))
    total = float(np.sum((y - np.mean(y)) ** 2))
    figures = _errors(errors, covered)
    mse = float(np.mean(errors**2))
    by_group: dict[str, dict[str, Any]] = {}
    if groups is not None:
        labels = np.asarray([label if label is not None else "" for label in groups], dtype=object)
        for label in sorted({g for g in groups if g is not None}):
            rows = labels == label
            by_group[label] = _errors(errors[rows], None if covered is None else covered[rows])
    return {
        **figures,
        "mse": mse,
        "r2": None if total == 0.0 else 1.0 - float(np.sum(errors**2)) / total,
        "extrapolated": extrapolated,
        "by_group": by_group,
        "calibration": calibration(predicted, y),
        "sample": sample_pairs(predicted, y),
    }
