"""Checking the input arrays and splitting off the seeded hold-out."""

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.engine.errors import DegenerateDataError, InvalidConfigError

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]


def feature_label(index: int, feature_names: Sequence[str] | None) -> str:
    """'feature 1 ('info')' when names are known, else 'feature 1'."""
    if feature_names is not None and index < len(feature_names):
        return f"feature {index} ({feature_names[index]!r})"
    return f"feature {index}"


def as_features(X: ArrayLike, feature_names: Sequence[str] | None = None) -> FloatArray:
    """X as a C-contiguous float64 (n, p) array with p >= 1 and only finite values."""
    try:
        array = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DegenerateDataError(f"X must be numeric: {error}") from error
    if array.ndim != 2 or array.shape[1] < 1:
        raise DegenerateDataError(
            f"X must be a 2-D array (pupils × grades) with at least one column, "
            f"got shape {array.shape}"
        )
    if feature_names is not None and len(feature_names) != array.shape[1]:
        raise DegenerateDataError(
            f"{len(feature_names)} feature names for {array.shape[1]} columns of X"
        )
    # One sum is a cheap test (NaN and inf propagate); locate the culprit only if it fails.
    if not (np.isfinite(array.sum()) or np.isfinite(array).all()):
        row, column = (int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise DegenerateDataError(
            f"X has a non-finite value ({array[row, column]}) at row {row}, "
            f"{feature_label(column, feature_names)}",
            feature=column,
        )
    return array


def as_targets(y: ArrayLike, n_rows: int) -> FloatArray:
    """y as a float64 (n,) array of finite values matching X's rows."""
    try:
        array = np.ascontiguousarray(y, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DegenerateDataError(f"y must be numeric: {error}") from error
    if array.ndim != 1 or array.shape[0] != n_rows:
        raise DegenerateDataError(
            f"y must be a 1-D array with one value per row of X ({n_rows}), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        row = int(np.argmax(~np.isfinite(array)))
        raise DegenerateDataError(f"y has a non-finite value ({array[row]}) at row {row}")
    return array


def split_holdout(n: int, validation_fraction: float, seed: int) -> tuple[IndexArray, IndexArray]:
    """The (train_idx, val_idx) row indices that `fit` uses, both sorted.

    round(validation_fraction · n) rows, at least one when the fraction is > 0, are drawn
    with `np.random.default_rng((seed, 0))`; sorting keeps the course's row order for the
    training batches. At least two training rows must remain.
    """
    if not 0 <= validation_fraction < 1:
        raise InvalidConfigError(
            "validation_fraction", f"must be in [0, 1), got {validation_fraction!r}"
        )
    if validation_fraction == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    n_val = max(1, round(validation_fraction * n))
    if n - n_val < 2:
        raise DegenerateDataError(
            f"validation_fraction={validation_fraction} keeps {n - n_val} of {n} rows "
            "for training; at least 2 are needed",
            parameter="validation_fraction",
        )
    order = np.random.default_rng((seed, 0)).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def kfold_indices(n: int, folds: int, seed: int) -> list[IndexArray]:
    """The validation rows of each of `folds` folds, each sorted: a permutation drawn with
    `np.random.default_rng((seed, 2))`, cut into folds whose sizes differ by at most one."""
    order = np.random.default_rng((seed, 2)).permutation(n)
    return [np.sort(part) for part in np.array_split(order, folds)]


def check_enough_rows(n: int) -> None:
    if n < 2:
        raise DegenerateDataError(f"need at least 2 pupils to learn from, got {n}")


def standardization(
    X: FloatArray, feature_names: Sequence[str] | None
) -> tuple[FloatArray, FloatArray]:
    """Column means and (population) standard deviations; constant columns are rejected."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    for j in range(X.shape[1]):
        # Below this the z-scores are rounding noise blown up to unit size.
        if scale[j] <= 1e-12 * max(1.0, math.fabs(mean[j])):
            raise DegenerateDataError(
                f"{feature_label(j, feature_names)} is constant on the training rows "
                f"(every value is {X[0, j]:g}), so it cannot be standardized; "
                "drop it or turn standardize off",
                feature=j,
            )
    return mean, scale
