"""Grade tables out as CSV that French spreadsheets open as they are."""

import csv
import io
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson

from app.tables.csv import DELIMITERS


class Verbatim(str):
    """Text to write as it is: a caller that checked it is no formula (a negative number)."""


def write_csv(
    header: list[str],
    columns: list[Sequence[object] | npt.NDArray[np.generic]],
    *,
    delimiter: str = ",",
    decimal_comma: bool = False,
    bom: bool = False,
    header_row: bool = True,
) -> bytes:
    """UTF-8 CSV with CRLF line ends; `;` + decimal_comma is what French Excel opens as is.

    Floats are written in their shortest round-trip form, None and NaN as empty cells.
    Set `bom` for Excel, which otherwise reads UTF-8 as windows-1252. Without `header_row`,
    the rows only: the pieces after the first of a table written a piece at a time.
    """
    if delimiter not in DELIMITERS:
        raise ValueError(f"delimiter must be one of {DELIMITERS!r}, got {delimiter!r}")
    if len(columns) != len(header):
        raise ValueError(f"{len(header)} header names but {len(columns)} columns")
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    cells = [_format_column(column, decimal_comma) for column in columns]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    if header_row:
        writer.writerow([spreadsheet_safe(name) for name in header])
    numeric = all(isinstance(c, np.ndarray) and c.dtype.kind in "iuf" for c in columns)
    if numeric and not (decimal_comma and delimiter == ","):
        # Numbers never need quoting here: the rows are joined as they are (a history of
        # 500,000 points in a tenth of the csv module's time).
        if cells and cells[0]:
            out.write("\r\n".join(map(delimiter.join, zip(*cells, strict=True))) + "\r\n")
    else:
        writer.writerows(zip(*cells, strict=True))
    return (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8")


def _format_column(
    column: Sequence[object] | npt.NDArray[np.generic], decimal_comma: bool
) -> list[str]:
    if isinstance(column, np.ndarray) and column.dtype.kind == "f":
        return _format_floats(column.astype(np.float64, copy=False), decimal_comma)
    if isinstance(column, np.ndarray) and column.dtype.kind in "iu" and column.size:
        texts = orjson.dumps(np.ascontiguousarray(column), option=orjson.OPT_SERIALIZE_NUMPY)
        return texts[1:-1].decode("ascii").split(",")
    return [_format_cell(value, decimal_comma) for value in column]


def _format_floats(column: npt.NDArray[np.float64], decimal_comma: bool) -> list[str]:
    if np.isinf(column).any():
        raise ValueError("cannot write an infinite value to CSV")
    texts = _shortest_texts(column)
    if decimal_comma and texts:
        texts = "\0".join(texts).replace(".", ",").split("\0")
    for index in np.flatnonzero(np.isnan(column)).tolist():
        texts[index] = ""
    return texts


def _shortest_texts(column: npt.NDArray[np.float64]) -> list[str]:
    """repr() of every float (the shortest text that reads back to the same float), NaN as
    anything. orjson writes the same digits in C; only its exponent form differs from
    repr's (1e-5, not 1e-05), so the values repr writes with an exponent are left to it."""
    if not column.size:
        return []
    texts = orjson.dumps(np.ascontiguousarray(column), option=orjson.OPT_SERIALIZE_NUMPY)
    out = texts[1:-1].decode("ascii").split(",")
    with np.errstate(invalid="ignore"):
        size = np.abs(column)
        exponent_form = np.flatnonzero(((size < 1e-4) & (size != 0)) | (size >= 1e16))
    for index in exponent_form.tolist():
        out[index] = repr(float(column[index]))
    return out


def _format_cell(value: object, decimal_comma: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        raise TypeError("refusing to write a boolean to a grade CSV; convert it first")
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        if math.isinf(number):
            raise ValueError("cannot write an infinite value to CSV")
        text = repr(number)
        return text.replace(".", ",") if decimal_comma else text
    if isinstance(value, Verbatim):
        return str(value)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    raise TypeError(f"cannot write a {type(value).__name__} to CSV")


# A spreadsheet opening the file evaluates a cell that starts with one of these as a formula
# (CSV injection, OWASP): such text is written behind an apostrophe, which Excel and
# LibreOffice show as plain text. Numbers are formatted from floats and never start so.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
