"""Grade tables in and out as CSV, the way French school software and spreadsheets write them.

Reading accepts the three dialects met in practice: comma-separated with a decimal point
(quoted "12,5" also works), semicolon-separated with a decimal comma (French Excel, Pronote),
and tab-separated. Row numbers in errors count data rows: the header is row 0, the first
pupil row 1, and blank lines (empty, or only separators) are not counted.

Two readers produce the same result: `_read_fast` hands the whole body to numpy's C parser
and only says yes or no; `_read_general` walks the rows with `csv` and is the one that
explains what is wrong. Only uploads that are unusual or bad pay for the second.
"""

import codecs
import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from app.tables.errors import TableError, TooManyRowsError
from app.tables.ids import MAX_ID_LENGTH, first_bad_id
from app.tables.names import feature_key

DELIMITERS = (";", "\t", ",")

_SNIFF_CHARS = 64 * 1024
_SNIFF_ROWS = 20
_QUOTE = '"'
_WORKBOOK_SIGNATURES = {
    b"PK\x03\x04": "a zipped spreadsheet workbook (.xlsx or .ods)",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook (.xls)",
    b"%PDF": "a PDF document",
}
_SEP_LINE = re.compile(r"sep=(.?)(?:\r\n|\r|\n|$)")  # Excel's hint line, "sep=;"
_COMMA_DECIMAL = re.compile(r"\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*")
_POINT_DECIMAL = re.compile(r"\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*")


@dataclass(frozen=True)
class GradeTable:
    """Value columns in file order (the id column apart); `values[i, j]` is row i+1's `keys[j]`."""

    headers: list[str]
    keys: list[str]
    id_header: str | None
    ids: list[str] | None
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Layout:
    """What the header row says about every data row."""

    delimiter: str
    width: int
    id_index: int | None
    id_header: str | None
    value_indices: list[int]
    headers: list[str]
    keys: list[str]


def read_grade_csv(
    data: bytes,
    *,
    id_column: str | None = "id",
    charset: str | None = None,
    max_rows: int | None = None,
    fast_path: bool = True,
) -> GradeTable:
    """Parse an uploaded grade table; every problem is a TableError naming row and column.

    `fast_path=False` skips numpy's reader (the result is the same; only slower).
    """
    body, layout = _prepare(data, id_column, charset)
    fast = _read_fast(body, layout, max_rows) if fast_path else None
    return fast if fast is not None else _read_general(body, layout, max_rows)


def read_grade_csv_fast(
    data: bytes,
    *,
    id_column: str | None = "id",
    charset: str | None = None,
    max_rows: int | None = None,
) -> GradeTable | None:
    """numpy's reader alone: the table when it reads the body cleanly, else None (it never
    explains; `read_grade_csv` then asks the csv reader, which does)."""
    body, layout = _prepare(data, id_column, charset)
    return _read_fast(body, layout, max_rows)


def _prepare(data: bytes, id_column: str | None, charset: str | None) -> tuple[str, _Layout]:
    """The body after the header, and what the header says about its rows."""
    text = _decode(data, charset)
    delimiter, text = _find_delimiter(text)
    header, body = _split_header(text, delimiter)
    return body, _read_header(header, delimiter, id_column)


def detect_dialect(data: bytes, *, charset: str | None = None) -> tuple[str, bool]:
    """(delimiter, decimal_comma) of an upload, so that a response can be written alike."""
    delimiter, text = _find_delimiter(_decode(data, charset))
    records = _sniff_records(text, delimiter)
    cells = [cell for record in records[1:] for cell in record]
    comma_decimals = sum(_COMMA_DECIMAL.fullmatch(cell) is not None for cell in cells)
    point_decimals = sum(_POINT_DECIMAL.fullmatch(cell) is not None for cell in cells)
    if comma_decimals != point_decimals:
        return delimiter, comma_decimals > point_decimals
    # Nothing to go by: a semicolon file comes from a French spreadsheet.
    return delimiter, delimiter == ";"


def write_csv(
    header: list[str],
    columns: list[Sequence[object] | npt.NDArray[np.generic]],
    *,
    delimiter: str = ",",
    decimal_comma: bool = False,
    bom: bool = False,
) -> bytes:
    """UTF-8 CSV with CRLF line ends; `;` + decimal_comma is what French Excel opens as is.

    Floats are written in their shortest round-trip form, None and NaN as empty cells.
    Set `bom` for Excel, which otherwise reads UTF-8 as windows-1252.
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
    writer.writerow([spreadsheet_safe(name) for name in header])
    writer.writerows(zip(*cells, strict=True))
    return (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8")


def _decode(data: bytes, charset: str | None) -> str:
    for signature, what in _WORKBOOK_SIGNATURES.items():
        if data.startswith(signature):
            raise TableError(f"this is {what}, not CSV; save or export it as CSV")
    if charset is not None:
        encoding = charset.strip().strip("\"'")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # Excel's "Unicode text" export
    else:
        encoding = "utf-8"
    try:
        is_utf8 = codecs.lookup(encoding).name == "utf-8"
        text = data.decode(encoding)
    except LookupError:
        raise TableError(f"unknown charset {charset!r}") from None
    except UnicodeDecodeError as error:
        line = _line_of(data[: error.start].decode(encoding, errors="replace"))
        if is_utf8:
            raise TableError(
                f"invalid UTF-8 on line {line}; send UTF-8 or set charset=windows-1252 "
                "in Content-Type"
            ) from None
        raise TableError(f"invalid {encoding} on line {line}") from None
    text = text.removeprefix("\ufeff")
    nul = text.find("\0")
    if nul >= 0:
        raise TableError(
            f"line {_line_of(text[:nul])} contains a NUL character; this is not a CSV text file"
        )
    return text


def _line_of(text_before: str) -> int:
    """1-based line number of the character that follows `text_before`, for LF, CRLF and CR."""
    return text_before.count("\n") + text_before.count("\r") - text_before.count("\r\n") + 1


def _find_delimiter(text: str) -> tuple[str, str]:
    """The separator, and the text without Excel's optional "sep=;" first line."""
    if text.startswith("sep="):
        sep_line = _SEP_LINE.match(text)
        if sep_line is None or sep_line[1] not in DELIMITERS:
            first_line = re.split(r"[\r\n]", text, maxsplit=1)[0]
            raise TableError(f"unsupported separator line {first_line!r}; use sep=; or sep=,")
        return sep_line[1], text[sep_line.end() :]
    best: tuple[tuple[float, int], str] | None = None
    for delimiter in DELIMITERS:
        records = _sniff_records(text, delimiter)
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        rows = records[1:]
        agreeing = sum(len(row) == width for row in rows) / len(rows) if rows else 1.0
        # Ties go to the earlier delimiter: ';' before tab before ','.
        if best is None or (agreeing, width) > best[0]:
            best = (agreeing, width), delimiter
    if best is None:
        if not text.strip():
            raise TableError("the file is empty; expected a header line and grade rows")
        raise TableError(
            "a grade table needs at least 2 columns separated by ';', ',' or a tab; "
            "the header line has none"
        )
    return best[1], text


def _sniff_records(text: str, delimiter: str) -> list[list[str]]:
    """The first non-blank records of `text`, cut at a line end so the last one is whole."""
    reader = csv.reader(io.StringIO(_head(text), newline=""), delimiter=delimiter)
    try:
        return list(islice(filter(any, reader), _SNIFF_ROWS + 1))
    except csv.Error:
        return []


def _head(text: str) -> str:
    """The first lines of a long text, cut after a line end; the text itself when short."""
    if len(text) <= _SNIFF_CHARS:
        return text
    end = max(text.rfind("\n", 0, _SNIFF_CHARS), text.rfind("\r", 0, _SNIFF_CHARS))
    return text[: end + 1] if end > 0 else text[:_SNIFF_CHARS]


def _split_header(text: str, delimiter: str) -> tuple[list[str], str]:
    """The first non-blank record, and the text after it."""
    head = _head(text)
    header, end = _first_record(head, delimiter)
    if end == len(head) and head is not text:  # the header may go on past the head
        header, end = _first_record(text, delimiter)
    if header is None:
        raise TableError("the file is empty; expected a header line and grade rows")
    return header, text[end:]


def _first_record(text: str, delimiter: str) -> tuple[list[str] | None, int]:
    stream = io.StringIO(text, newline="")
    try:
        record = next(filter(any, csv.reader(stream, delimiter=delimiter)), None)
    except csv.Error as error:
        raise TableError(f"cannot read the header line: {error}", row=0) from None
    return record, stream.tell()


def _read_header(header: list[str], delimiter: str, id_column: str | None) -> _Layout:
    names = [cell.strip() for cell in header]
    if len(names) < 2:
        raise TableError("a grade table needs at least 2 columns", row=0)
    keys: list[str] = []
    header_of_key: dict[str, str] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise TableError(
                f"header cell {position} is empty; every column needs a name",
                row=0,
                column=str(position),
            )
        key = feature_key(name)
        if key in header_of_key:
            raise TableError(
                f"columns {header_of_key[key]!r} and {name!r} have the same name ({key!r})",
                row=0,
                column=name,
            )
        header_of_key[key] = name
        keys.append(key)
    id_key = feature_key(id_column) if id_column is not None else None
    id_index = keys.index(id_key) if id_key in keys else None
    value_indices = [i for i in range(len(names)) if i != id_index]
    return _Layout(
        delimiter=delimiter,
        width=len(names),
        id_index=id_index,
        id_header=names[id_index] if id_index is not None else None,
        value_indices=value_indices,
        headers=[names[i] for i in value_indices],
        keys=[keys[i] for i in value_indices],
    )


def _read_fast(body: str, layout: _Layout, max_rows: int | None) -> GradeTable | None:
    """The table if numpy's parser reads it cleanly, else None; never explains."""
    first_cr = body.find("\r")
    if first_cr >= 0 and body[first_cr + 1 : first_cr + 2] != "\n":
        # loadtxt reads LF and CRLF but not old-Mac CR line ends; a file mixing them
        # fails below and goes to the general reader.
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body or body.isspace():
        return None
    lines = body.count("\n") + (not body.endswith("\n"))
    if max_rows is not None and lines > max_rows:
        return None  # maybe too many rows: let the general reader count and stop early
    # With ';' or tab a comma can only be a decimal comma (or make the cell invalid either way).
    numbers_text = body if layout.delimiter == "," else body.replace(",", ".")
    fields = [(f"c{i}", "U1" if i == layout.id_index else "f8") for i in range(layout.width)]
    try:
        # A structured dtype makes loadtxt insist on exactly `width` cells in every row.
        records = np.loadtxt(
            io.StringIO(numbers_text),
            dtype=np.dtype(fields),
            delimiter=layout.delimiter,
            quotechar=_QUOTE,
            comments=None,
            ndmin=1,
        )
    except ValueError:
        return None
    values = np.empty((len(records), len(layout.value_indices)), dtype=np.float64)
    for j, i in enumerate(layout.value_indices):
        values[:, j] = records[f"c{i}"]
    if not np.isfinite(values).all():
        return None
    ids = None
    if layout.id_index is not None:
        # A fixed width keeps loadtxt from reading in chunks; a cell that fills it may have
        # been cut, so the general reader decides (it will say the id is too long).
        id_width = MAX_ID_LENGTH + 1
        try:
            raw_ids: list[str] = np.loadtxt(
                io.StringIO(body),
                dtype=f"U{id_width}",
                usecols=(layout.id_index,),
                delimiter=layout.delimiter,
                quotechar=_QUOTE,
                comments=None,
                ndmin=1,
            ).tolist()
        except ValueError:
            return None
        if max(map(len, raw_ids), default=0) >= id_width:
            return None
        ids = list(map(str.strip, raw_ids))
        if len(ids) != len(values) or first_bad_id(ids) is not None:
            return None
    return _table(layout, ids, values)


def _read_general(body: str, layout: _Layout, max_rows: int | None) -> GradeTable:
    """Read row by row with `csv`; raise a TableError for the first problem found."""
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=layout.delimiter)
    rows: list[list[str]] = []
    try:
        for record in filter(any, reader):  # skips empty lines and rows of empty cells
            if len(rows) == max_rows:
                raise TooManyRowsError(max_rows)
            rows.append(record)
    except csv.Error as error:
        row = len(rows) + 1
        raise TableError(f"row {row} cannot be read as CSV: {error}", row=row) from None

    ragged = set(map(len, rows)) - {layout.width}
    for row, record in enumerate(rows if ragged else [], start=1):
        if len(record) != layout.width:
            hint = ""
            if layout.delimiter == "," and len(record) > layout.width:
                hint = ' (in a comma-separated file a decimal comma must be quoted: "12,5")'
            raise TableError(
                f"row {row} has {len(record)} values, the header has {layout.width} columns" + hint,
                row=row,
            )

    ids = None
    if layout.id_index is not None and layout.id_header is not None:
        ids = list(map(str.strip, map(itemgetter(layout.id_index), rows)))
        bad = first_bad_id(ids)
        if bad is not None:
            index, problem = bad
            raise TableError(
                f"row {index + 1}, column {layout.id_header!r}: {problem}",
                row=index + 1,
                column=layout.id_header,
            )

    values = np.empty((len(rows), len(layout.value_indices)), dtype=np.float64)
    first_bad: tuple[int, int] | None = None  # (row index, value column), row-major order
    for j, i in enumerate(layout.value_indices):
        column, bad_index = _parse_numbers(list(map(itemgetter(i), rows)))
        values[:, j] = column
        if bad_index is not None and (first_bad is None or bad_index < first_bad[0]):
            first_bad = bad_index, j
    if first_bad is not None:
        index, j = first_bad
        header = layout.headers[j]
        cell = rows[index][layout.value_indices[j]]
        raise TableError(
            f"row {index + 1}, column {header!r}: {_describe_bad_number(cell)}",
            row=index + 1,
            column=header,
        )
    return _table(layout, ids, values)


def _table(layout: _Layout, ids: list[str] | None, values: npt.NDArray[np.float64]) -> GradeTable:
    return GradeTable(
        headers=layout.headers,
        keys=layout.keys,
        id_header=layout.id_header,
        ids=ids,
        values=values,
    )


def _parse_numbers(cells: list[str]) -> tuple[npt.NDArray[np.float64], int | None]:
    """The cells as floats (NaN where bad) and the index of the first bad one, if any.

    A cell is good when, stripped and with ',' read as '.', it is an ASCII float literal
    without underscores that is finite: no "nan", "inf", "1_000", "0x1A" or "１２".
    """
    joined = "\0".join(cells)  # NUL cannot occur in a decoded upload
    if "_" not in joined and joined.isascii():
        if "," in joined:
            cells = joined.replace(",", ".").split("\0")
        try:
            column = np.array(cells, dtype=np.float64)
        except ValueError:
            pass
        else:
            if np.isfinite(column).all():
                return column, None
    numbers = [_parse_number(cell) for cell in cells]
    bad_index = next((i for i, number in enumerate(numbers) if number is None), None)
    column = np.array([math.nan if number is None else number for number in numbers])
    return column, bad_index


def _parse_number(cell: str) -> float | None:
    text = cell.strip().replace(",", ".")
    if not text.isascii() or "_" in text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _describe_bad_number(cell: str) -> str:
    text = cell.strip()
    if not text:
        return "the cell is empty; a number is required"
    message = f"{text!r} is not a number"
    if re.fullmatch(r"[+-]?\d{1,3}(?:[ \u00a0\u202f.,']\d{3})+(?:[.,]\d+)?", text):
        message += " (write it without a thousands separator)"
    return message


def _format_column(
    column: Sequence[object] | npt.NDArray[np.generic], decimal_comma: bool
) -> list[str]:
    if isinstance(column, np.ndarray) and column.dtype.kind == "f":
        return _format_floats(column.astype(np.float64, copy=False), decimal_comma)
    return [_format_cell(value, decimal_comma) for value in column]


def _format_floats(column: npt.NDArray[np.float64], decimal_comma: bool) -> list[str]:
    if np.isinf(column).any():
        raise ValueError("cannot write an infinite value to CSV")
    texts = list(map(repr, column.tolist()))  # shortest text that reads back to the same float
    if decimal_comma and texts:
        texts = "\0".join(texts).replace(".", ",").split("\0")
    for index in np.flatnonzero(np.isnan(column)).tolist():
        texts[index] = ""
    return texts


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
    if isinstance(value, str):
        return spreadsheet_safe(value)
    raise TypeError(f"cannot write a {type(value).__name__} to CSV")


# A spreadsheet opening the file evaluates a cell that starts with one of these as a formula
# (CSV injection, OWASP): such text is written behind an apostrophe, which Excel and
# LibreOffice show as plain text. Numbers are formatted from floats and never start so.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
