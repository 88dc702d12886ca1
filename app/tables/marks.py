"""Marks that are not plain numbers, as French school software writes them.

Pronote leaves `Abs`, `Disp`, `N.Not`, `Inap` and `N.Rdu` out of averages and counts `Abs*`
and `N.Rdu*` as 0; ScoDoc writes `ABS`, `EXC` and `ATT`, EcoleDirecte `NE`. Codes are
matched whatever their case, accents, spaces and dots. A mark written `a/b` (`15/20`,
`7,5/10`) is on another scale and is converted to the cohort's.
"""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.core.errors import InvalidInput

SpecialMarks = Literal["refuse", "drop"]
SPECIAL_MARKS: tuple[SpecialMarks, ...] = ("refuse", "drop")

# Normalised spelling → the code as reports and errors name it.
EXCLUDED_CODES = {
    "abs": "Abs",
    "absent": "Abs",
    "disp": "Disp",
    "dispense": "Disp",
    "nn": "N.Not",
    "nnot": "N.Not",
    "nonnote": "N.Not",
    "ne": "NE",
    "inap": "Inap",
    "inapte": "Inap",
    "nrdu": "N.Rdu",
    "nonrendu": "N.Rdu",
    "exc": "EXC",
    "att": "ATT",
    "": "empty",
}
EMPTY = "empty"
ZERO_CODES = {"abs*": "Abs*", "nrdu*": "N.Rdu*"}
RATIO = "a/b"

_IGNORED_IN_CODES = re.compile(r"[\s.\u00a0\u202f]+")
_RATIO = re.compile(r"\s*(\d+(?:[.,]\d*)?|[.,]\d+)\s*/\s*([+-]?\d+(?:[.,]\d*)?|[.,]\d+)\s*")


class MarkError(ValueError):
    """A cell that looks like a mark but cannot be one (15/0, 25/20); says why, not what."""


@dataclass(frozen=True)
class Mark:
    """A cell of a grade column that is not a plain number.

    `row` is the 0-based index of the pupil in the table, `column` the index of the grade
    column; `kind` says what the cell means, `code` names it (`Abs`, `Abs*`, `empty`, or
    `a/b` for a mark on another scale, whose value `fraction` = a/b is in [0, 1]).
    """

    row: int
    column: int
    kind: Literal["excluded", "zero", "ratio"]
    code: str
    fraction: float = 0.0


def normalise_code(text: str) -> str:
    """`N.Not` → `nnot`, ` Dispensé ` → `dispense`, `ABS*` → `abs*`."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _IGNORED_IN_CODES.sub("", plain).lower()


def read_mark(text: str, row: int, column: int) -> Mark | None:
    """The mark a cell holds, or None when it is no mark at all (a name, a typo).

    Raises MarkError for an `a/b` that cannot be a mark (b ≤ 0, or a > b).
    """
    ratio = _RATIO.fullmatch(text)
    if ratio is not None:
        numerator = float(ratio[1].replace(",", "."))
        denominator = float(ratio[2].replace(",", "."))
        if denominator <= 0:
            raise MarkError("a mark a/b needs b > 0")
        if numerator > denominator:
            raise MarkError("a mark a/b needs a ≤ b")
        return Mark(row, column, "ratio", RATIO, numerator / denominator)
    code = normalise_code(text)
    if code in EXCLUDED_CODES:
        return Mark(row, column, "excluded", EXCLUDED_CODES[code])
    if code in ZERO_CODES:
        return Mark(row, column, "zero", ZERO_CODES[code])
    return None


@dataclass(frozen=True)
class ResolvedMarks:
    """The grades once the marks are read: `values` with zero marks at the low end and a/b
    marks on the cohort's scale; `keep` the pupils to keep (False: an excluded mark)."""

    values: np.ndarray
    keep: np.ndarray
    special_marks: dict[str, dict[str, int]]
    rescaled: dict[str, int]


def resolve_marks(
    values: np.ndarray,
    marks: Sequence[Mark],
    *,
    special_marks: SpecialMarks,
    grade_range: tuple[float, float],
    labels: Sequence[str],
    field: str,
    one_based_rows: bool,
) -> ResolvedMarks:
    """Apply the upload's choice to its marks. `refuse`: any code (excluded or zero) is a
    422 naming the row, the column and the code; `drop`: a pupil with an excluded mark is
    left out, a zero mark is the low end of the range. `a/b` is rescaled either way."""
    low, high = grade_range
    # Nothing to resolve, nothing to copy: a national cohort's grades are 32 MB.
    resolved = values.copy() if marks else values
    keep = np.ones(values.shape[0], dtype=np.bool_)
    counts: dict[str, dict[str, int]] = {}
    rescaled: dict[str, int] = {}
    for mark in marks:
        label = labels[mark.column]
        if mark.kind == "ratio":
            resolved[mark.row, mark.column] = low + mark.fraction * (high - low)
            rescaled[label] = rescaled.get(label, 0) + 1
            continue
        if special_marks == "refuse":
            raise _refused(mark, label, field, one_based_rows)
        by_code = counts.setdefault(label, {})
        by_code[mark.code] = by_code.get(mark.code, 0) + 1
        if mark.kind == "zero":
            resolved[mark.row, mark.column] = low
        else:
            keep[mark.row] = False
    return ResolvedMarks(resolved, keep, counts, rescaled)


def _refused(mark: Mark, label: str, field: str, one_based_rows: bool) -> InvalidInput:
    row = mark.row + 1 if one_based_rows else mark.row
    where = f"row {row}" if one_based_rows else f"{field}[{row}]"
    if mark.code == EMPTY:
        what = "the cell is empty; a number is required"
    else:
        what = f"the mark {mark.code!r} is not a grade"
    return InvalidInput(
        f"{where}, column {label!r}: {what} (with special_marks=drop a pupil with such a mark "
        "is left out, and Abs* or N.Rdu* count as the lowest grade)",
        loc=["body", field, row, label],
    )
