"""Checks on tables of grades, shared by cohort upload and prediction: every value a finite
grade inside the range, the range itself, and the per-column statistics kept with a cohort."""

from collections.abc import Sequence

import numpy as np

from app.core.errors import InvalidInput


def _where(row: int, ids: Sequence[str] | None, one_based: bool) -> str:
    label = f"row {row + 1}" if one_based else f"students[{row}]"
    if ids is not None:
        return f"{label} (id {ids[row]!r})"
    return label


def check_grades(
    values: np.ndarray,
    columns: Sequence[str],
    grade_range: tuple[float, float],
    *,
    ids: Sequence[str] | None,
    field: str,
    one_based_rows: bool,
) -> None:
    """Every value finite and inside the grade range, else a 422 naming pupil and column.

    The offending value is not echoed: it is a pupil's grade.
    """
    low, high = grade_range
    finite = np.isfinite(values)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise _cell_error(row, col, columns, ids, field, one_based_rows, "is not a finite number")
    outside = (values < low) | (values > high)
    if outside.any():
        row, col = (int(i) for i in np.argwhere(outside)[0])
        raise _cell_error(
            row,
            col,
            columns,
            ids,
            field,
            one_based_rows,
            f"is outside the grade range [{low:g}, {high:g}]",
        )


def _cell_error(
    row: int,
    col: int,
    columns: Sequence[str],
    ids: Sequence[str] | None,
    field: str,
    one_based: bool,
    what: str,
) -> InvalidInput:
    column = columns[col]
    where = _where(row, ids, one_based)
    return InvalidInput(
        f"{where}, column {column!r}: the grade {what}",
        loc=["body", field, row + 1 if one_based else row, column],
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
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    low = values.min(axis=0)
    high = values.max(axis=0)
    return {
        name: {
            "mean": float(mean[j]),
            "std": float(std[j]),
            "min": float(low[j]),
            "max": float(high[j]),
        }
        for j, name in enumerate(columns)
    }
