"""Checks on tables of grades, shared by cohort upload and prediction: every value a finite
grade inside the range, the range itself, and the per-column statistics kept with a cohort.

Errors name the pupil by its row (or its index in a JSON list) and the column; they never
quote a cell or an id, which are personal data.
"""

from collections.abc import Sequence

import numpy as np

from app.core.errors import InvalidInput


def all_grades(values: np.ndarray, grade_range: tuple[float, float]) -> bool:
    """Whether every value is a finite grade inside the range: three passes over the values
    (NaN compares false), where finding the offenders costs a boolean matrix more."""
    low, high = grade_range
    if values.size <= _FEW:
        return all(low <= value <= high for value in values.ravel().tolist())
    return bool(values.min() >= low and values.max() <= high)


# Up to this many values, Python compares faster than numpy's reductions start.
_FEW = 32


def grade_problems(
    values: np.ndarray, grade_range: tuple[float, float]
) -> dict[int, tuple[int, str]]:
    """For each pupil (row index) whose grades are not all finite and inside the range, the
    first offending column and what is wrong with it."""
    low, high = grade_range
    if all_grades(values, grade_range):
        return {}
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    problems: dict[int, tuple[int, str]] = {}
    for row, col in np.argwhere(bad).tolist():
        if row not in problems:
            value = values[row, col]
            what = (
                "is not a finite number"
                if not np.isfinite(value)
                else f"is outside the grade range [{low:g}, {high:g}]"
            )
            problems[row] = (col, f"the grade {what}")
    return problems


def check_grades(
    values: np.ndarray,
    columns: Sequence[str],
    grade_range: tuple[float, float],
    *,
    field: str,
    one_based_rows: bool,
    rows: Sequence[int] | np.ndarray | None = None,
) -> None:
    """Every value finite and inside the grade range, else a 422 naming pupil and column.

    `rows` are the pupils' positions in the request when some were left out (0-based).
    The offending value is not echoed: it is a pupil's grade.
    """
    if all_grades(values, grade_range):
        return
    index, (col, what) = min(grade_problems(values, grade_range).items())
    position = int(rows[index]) if rows is not None else index
    row = position + 1 if one_based_rows else position
    where = f"row {row}" if one_based_rows else f"{field}[{row}]"
    raise InvalidInput(
        f"{where}, column {columns[col]!r}: {what}", loc=["body", field, row, columns[col]]
    )


def check_grade_range(grade_range: Sequence[float], *, loc: list[str | int]) -> tuple[float, float]:
    if len(grade_range) != 2:
        raise InvalidInput("grade_range needs two numbers: [low, high]", loc=loc)
    low, high = float(grade_range[0]), float(grade_range[1])
    if not (np.isfinite(low) and np.isfinite(high)) or not low < high:
        raise InvalidInput(
            "grade_range must be two finite numbers with low < high, e.g. [0, 20]", loc=loc
        )
    return low, high


def column_stats(values: np.ndarray, columns: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, min and max of each column, a column at a time: std over
    the whole matrix at once holds a deviation matrix as big as it (32 MB for 1M pupils)."""
    stats: dict[str, dict[str, float]] = {}
    for j, name in enumerate(columns):
        column = values[:, j]
        stats[name] = {
            "mean": float(column.mean()),
            "std": float(column.std()),
            "min": float(column.min()),
            "max": float(column.max()),
        }
    return stats
