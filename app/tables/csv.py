"""Grade tables in as CSV, the way French school software and spreadsheets write them.

Reading accepts the three dialects met in practice: comma-separated with a decimal point
(quoted "12,5" also works), semicolon-separated with a decimal comma (French Excel, Pronote),
and tab-separated. Row numbers in errors count data rows: the header is row 0, the first
pupil row 1, and blank lines (empty, or only separators) are not counted.

Two readers produce the same result: `_read_fast` hands the body to numpy's C parser a
megabyte at a time and only says yes or no; `_read_general` walks the rows with `csv` and
is the one that explains what is wrong. Only uploads that are unusual or bad pay for the second.
"""

import codecs
import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from app.tables.errors import TableError, TooManyRowsError
from app.tables.ids import MAX_ID_LENGTH, PackedIds, first_bad_id, group_label_problem
from app.tables.marks import Mark, MarkError, read_mark
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
class CellProblem:
    """A cell that is neither a number nor a mark, when problems are collected rather than
    raised: `row` 0-based, `column` the grade column's index, or None with `label` naming
    a key that should not be there; `what` never quotes the cell."""

    row: int
    column: int | None
    what: str
    label: str | None = None


@dataclass(frozen=True)
class GradeTable:
    """The grade columns in file order; `values[i, j]` is row i+1's `keys[j]`, NaN where the
    cell holds a mark (`marks`) rather than a number.

    `ids` and `groups` come from the id and group columns; `ignored` lists the headers of
    the columns that were not asked for (their cells are neither parsed nor kept);
    `cells` holds the grade cells as written, when asked for.
    """

    headers: list[str]
    keys: list[str]
    id_header: str | None
    ids: Sequence[str] | None
    values: npt.NDArray[np.float64]
    group_header: str | None = None
    groups: list[str | None] | None = None
    ignored: list[str] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    problems: list[CellProblem] = field(default_factory=list)
    cells: list[list[str]] | None = None


@dataclass(frozen=True)
class _Layout:
    """What the header row says about every data row."""

    delimiter: str
    width: int
    id_index: int | None
    id_header: str | None
    group_index: int | None
    group_header: str | None
    value_indices: list[int]
    headers: list[str]
    keys: list[str]
    ignored: list[str]


@dataclass(frozen=True)
class Columns:
    """Which columns to read. `values`: the grade columns, as headers or API names (None: all
    but the id and the group); `id_column` and `group_column` likewise by name. With
    `values` and `with_target`, the target is read after them: `target`, or else the last
    column that is nothing else."""

    values: Sequence[str] | None = None
    id_column: str | None = "id"
    group_column: str | None = None
    target: str | None = None
    with_target: bool = False


def read_grade_csv(
    data: bytes | bytearray,
    *,
    id_column: str | None = "id",
    charset: str | None = None,
    max_rows: int | None = None,
    fast_path: bool = True,
    columns: Columns | None = None,
    collect_problems: bool = False,
    keep_cells: bool = False,
) -> GradeTable:
    """Parse an uploaded grade table; every problem is a TableError naming row and column.

    A cell that holds a known mark (`Abs`, `15/20`, an empty cell: see marks.py) is NaN in
    `values` and listed in `marks`; what it means is the caller's choice. Any other text is
    a TableError, or with `collect_problems` a `CellProblem` of its row (prediction skips
    such pupils). `fast_path=False` skips numpy's reader (the same result, only slower).
    """
    columns = columns or Columns(id_column=id_column)
    if fast_path and not keep_cells:
        fast = _read_fast(data, charset, columns, max_rows)
        if fast is not None:
            return fast
    body, layout = _prepare(data, charset, columns)
    return _read_general(body, layout, max_rows, collect_problems, keep_cells)


def read_grade_csv_fast(
    data: bytes | bytearray,
    *,
    id_column: str | None = "id",
    charset: str | None = None,
    max_rows: int | None = None,
    columns: Columns | None = None,
) -> GradeTable | None:
    """numpy's reader alone: the table when it reads the body cleanly, else None (it never
    explains; `read_grade_csv` then asks the csv reader, which does)."""
    return _read_fast(data, charset, columns or Columns(id_column=id_column), max_rows)


def _prepare(data: bytes | bytearray, charset: str | None, columns: Columns) -> tuple[str, _Layout]:
    """The body after the header, and what the header says about its rows."""
    text = _decode(data, charset)
    delimiter, text = _find_delimiter(text)
    header, body = _split_header(text, delimiter)
    return body, _read_header(header, delimiter, columns)


def detect_dialect(data: bytes | bytearray, *, charset: str | None = None) -> tuple[str, bool]:
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


def _decode(data: bytes | bytearray, charset: str | None) -> str:
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


def _read_header(header: list[str], delimiter: str, columns: Columns) -> _Layout:
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
    id_index = _find_column(keys, columns.id_column)
    group_index = _find_column(keys, columns.group_column)
    if columns.group_column is not None and group_index is None:
        raise TableError(
            f"group_column {columns.group_column!r} is not in the header {names}",
            parameter="group_column",
        )
    if group_index is not None and group_index == id_index:
        raise TableError("group_column cannot be the id column", parameter="group_column")
    if columns.values is None:
        value_indices = [i for i in range(len(names)) if i not in (id_index, group_index)]
    else:
        value_indices = _chosen_columns(names, keys, columns.values, (id_index, group_index))
        if columns.with_target:
            taken = (id_index, group_index, *value_indices)
            value_indices.append(_target_column(names, keys, columns.target, taken))
    ignored = [
        names[i]
        for i in range(len(names))
        if i not in value_indices and i not in (id_index, group_index)
    ]
    return _Layout(
        delimiter=delimiter,
        width=len(names),
        id_index=id_index,
        id_header=names[id_index] if id_index is not None else None,
        group_index=group_index,
        group_header=names[group_index] if group_index is not None else None,
        value_indices=value_indices,
        headers=[names[i] for i in value_indices],
        keys=[keys[i] for i in value_indices],
        ignored=ignored,
    )


def _find_column(keys: list[str], name: str | None) -> int | None:
    if name is None or not name.strip():
        return None
    try:
        key = feature_key(name)
    except TableError:
        return None
    return keys.index(key) if key in keys else None


def _chosen_columns(
    names: list[str], keys: list[str], chosen: Sequence[str], taken: tuple[int | None, ...]
) -> list[int]:
    """The header positions of the grade columns asked for, in the order asked."""
    indices: list[int] = []
    for name in chosen:
        index = _find_column(keys, name)
        if index is None:
            raise TableError(
                f"features: no column {name!r} in the header {names}", parameter="features"
            )
        if index in taken:
            raise TableError(
                f"features: {names[index]!r} is the id or the group column, not a grade",
                parameter="features",
            )
        if index in indices:
            raise TableError(f"features: {names[index]!r} is listed twice", parameter="features")
        indices.append(index)
    return indices


def _target_column(
    names: list[str], keys: list[str], target: str | None, taken: tuple[int | None, ...]
) -> int:
    if target is not None:
        index = _find_column(keys, target)
        if index is None:
            raise TableError(
                f"target column {target!r} is not in the header {names}", parameter="target"
            )
        if index in taken:
            raise TableError(
                f"target {names[index]!r} is also a feature, the id or the group column",
                parameter="target",
            )
        return index
    free = [i for i in range(len(names)) if i not in taken]
    if not free:
        raise TableError("features: no column is left for the target", parameter="features")
    return free[-1]


# Codecs in which a line-feed byte is always a line end, so that a body can be decoded a
# piece at a time, cut after one (UTF-16 cannot).
_ASCII_SUPERSETS = frozenset({"utf-8", "ascii", "cp1252", "iso8859-1", "iso8859-15"})
_CHUNK_BYTES = 1 << 20
_NOT_SPACE = re.compile(rb"\S")


def _read_fast(
    data: bytes | bytearray, charset: str | None, columns: Columns, max_rows: int | None
) -> GradeTable | None:
    """The table if numpy's parser reads the file cleanly, else None; never explains.

    The body is read a megabyte at a time, from the bytes: decoded, its decimal commas
    made points, parsed by numpy into the grade matrix (allocated once, from the line
    count), and its ids packed (`PackedIds`). A million pupils then cost the file, the
    matrix and the packed ids, not a decoded copy of the file and a million id objects.
    Anything unusual (another codec, a NUL, a header the head does not hold, a cell numpy
    refuses) is None, and `_read_general` reads the file and says what is wrong.
    """
    start = _fast_body_start(data, charset, columns)
    if start is None:
        return None
    encoding, buffer, offset, layout = start
    if _NOT_SPACE.search(buffer, offset) is None:
        return None
    lines = buffer.count(b"\n", offset) + (not buffer.endswith(b"\n"))
    if max_rows is not None and lines > max_rows:
        return None  # maybe too many rows: let the general reader count and stop early
    values = np.empty((lines, len(layout.value_indices)), dtype=np.float64)
    filled = 0
    packed: list[PackedIds] = []
    view = memoryview(buffer)
    at = offset
    while at < len(buffer):
        end = buffer.find(b"\n", at + _CHUNK_BYTES) + 1 or len(buffer)
        try:
            text = str(view[at:end], encoding)
        except UnicodeDecodeError:
            return None
        at = end
        if text.isspace():
            if layout.id_index is not None:
                return None  # blank lines have no id: the general reader skips them
            continue
        piece = _read_piece(text, layout)
        if piece is None:
            return None
        numbers, ids = piece
        if filled + len(numbers) > lines:
            return None  # more records than line feeds (a CR in a quoted cell, say)
        values[filled : filled + len(numbers)] = numbers
        filled += len(numbers)
        if ids is not None:
            packed.append(PackedIds.join([ids]))
    if filled == 0:
        return None
    if filled < lines:
        values.resize((filled, values.shape[1]), refcheck=False)  # blank lines: no copy
    return _table(layout, PackedIds.join(packed) if packed else None, None, values)


def _read_piece(
    text: str, layout: _Layout
) -> tuple[npt.NDArray[np.float64], list[str] | None] | None:
    """A piece of the body's rows: their grades and ids, or None if numpy cannot read it."""
    # A structured dtype makes loadtxt insist on exactly `width` cells in every row.
    fields = [(f"c{i}", "U1" if i == layout.id_index else "f8") for i in range(layout.width)]
    try:
        records = np.loadtxt(
            # With ';' or tab a comma can only be a decimal comma (or make the cell invalid
            # either way).
            (text.replace(",", ".") if layout.delimiter != "," else text).splitlines(keepends=True),
            dtype=np.dtype(fields),
            delimiter=layout.delimiter,
            quotechar=_QUOTE,
            comments=None,
            ndmin=1,
        )
    except ValueError:
        return None
    numbers = np.empty((len(records), len(layout.value_indices)), dtype=np.float64)
    for j, i in enumerate(layout.value_indices):
        numbers[:, j] = records[f"c{i}"]
    if not np.isfinite(numbers).all():
        return None
    if layout.id_index is None:
        return numbers, None
    ids = _fast_ids(text, layout.delimiter, layout.id_index, len(records))
    return None if ids is None else (numbers, ids)


def _fast_body_start(
    data: bytes | bytearray, charset: str | None, columns: Columns
) -> tuple[str, bytes | bytearray, int, _Layout] | None:
    """The codec, the bytes and the offset of the first data row in them, and the header's
    layout, from the head of the file alone; None when the fast reader should leave the
    file to the other."""
    if charset is not None:
        encoding = charset.strip().strip("\"'")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    else:
        encoding = "utf-8"
    try:
        if codecs.lookup(encoding).name not in _ASCII_SUPERSETS:
            return None
    except LookupError:
        return None
    if data.startswith(tuple(_WORKBOOK_SIGNATURES)) or b"\0" in data:
        return None
    # At most 4 bytes a character: the head holds the sniffer's whole window, cut at a line.
    head_bytes = data[: 4 * _SNIFF_CHARS]
    whole = len(head_bytes) == len(data)
    if not whole:
        head_bytes = head_bytes[: max(head_bytes.rfind(b"\n"), head_bytes.rfind(b"\r")) + 1]
    try:
        head = head_bytes.decode(encoding)
    except UnicodeDecodeError:
        return None
    if not whole and len(head) <= _SNIFF_CHARS:
        return None
    try:
        delimiter, text = _find_delimiter(head.removeprefix("\ufeff"))
        header, body = _split_header(text, delimiter)
        layout = _read_header(header, delimiter, columns)
    except TableError:
        return None  # the other reader raises it, or the error that comes first
    if not whole and not body:
        return None  # the header may go on past the head
    if layout.ignored or layout.group_index is not None:
        return None  # text columns beside the grades: the general reader skips them
    offset = len(head[: len(head) - len(body)].encode(encoding))
    first_cr = data.find(b"\r", offset)
    if first_cr >= 0 and data[first_cr + 1 : first_cr + 2] != b"\n":
        # loadtxt reads LF and CRLF but not old-Mac CR line ends (Excel for Mac's
        # "Macintosh CSV"): made LF, at the price of a copy of the body.
        return encoding, data[offset:].replace(b"\r\n", b"\n").replace(b"\r", b"\n"), 0, layout
    return encoding, data, offset, layout


def _fast_ids(text: str, delimiter: str, id_index: int, n: int) -> list[str] | None:
    """The ids of the rows of `text`, stripped, if there is one a row and all are valid."""
    if _QUOTE not in text:
        # No quoting: the id is the text between the id_index-th separator and the next.
        cell = re.compile(
            rf"^(?:[^{re.escape(delimiter)}\n]*{re.escape(delimiter)}){{{id_index}}}"
            rf"([^{re.escape(delimiter)}\n]*)",
            re.MULTILINE,
        )
        # Empty lines at the end (an export's last line end, doubled) are no pupil's, as
        # for numpy; elsewhere an empty line meets an id of its own, and goes to the other.
        raw_ids: list[str] = cell.findall(text.rstrip("\r\n"))
    else:
        # A fixed width keeps loadtxt from reading in chunks; a cell that fills it may have
        # been cut, so the general reader decides (it will say the id is too long).
        id_width = MAX_ID_LENGTH + 1
        try:
            raw_ids = np.loadtxt(
                text.splitlines(keepends=True),
                dtype=f"U{id_width}",
                usecols=(id_index,),
                delimiter=delimiter,
                quotechar=_QUOTE,
                comments=None,
                ndmin=1,
            ).tolist()
        except ValueError:
            return None
        if max(map(len, raw_ids), default=0) >= id_width:
            return None
    ids = list(map(str.strip, raw_ids))
    if len(ids) != n or first_bad_id(ids) is not None:
        return None
    return ids


def _read_general(
    body: str, layout: _Layout, max_rows: int | None, collect_problems: bool, keep_cells: bool
) -> GradeTable:
    """Read row by row with `csv`; raise a TableError for the first problem found."""
    rows = _records(body, layout, max_rows)
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
    groups = None
    if layout.group_index is not None and layout.group_header is not None:
        groups = _groups(list(map(itemgetter(layout.group_index), rows)), layout.group_header)

    values, marks, problems, cells = _grade_columns(rows, layout, keep_cells)
    if problems and not collect_problems:
        first = min(problems, key=lambda p: (p.row, p.column or 0))
        header = layout.headers[first.column or 0]
        raise TableError(
            f"row {first.row + 1}, column {header!r}: {first.what}",
            row=first.row + 1,
            column=header,
        )
    marks.sort(key=lambda m: (m.row, m.column))
    return GradeTable(
        headers=layout.headers,
        keys=layout.keys,
        id_header=layout.id_header,
        ids=ids,
        values=values,
        group_header=layout.group_header,
        groups=groups,
        ignored=layout.ignored,
        marks=marks,
        problems=sorted(problems, key=lambda p: (p.row, p.column or 0)),
        cells=cells if keep_cells else None,
    )


def _grade_columns(
    rows: list[list[str]], layout: _Layout, keep_cells: bool
) -> tuple[npt.NDArray[np.float64], list[Mark], list[CellProblem], list[list[str]]]:
    """The grade columns as numbers (NaN where not), their marks, the cells that are neither,
    and the cells as written when asked for."""
    values = np.empty((len(rows), len(layout.value_indices)), dtype=np.float64)
    marks: list[Mark] = []
    problems: list[CellProblem] = []
    cells: list[list[str]] = []
    for j, i in enumerate(layout.value_indices):
        column_cells = list(map(itemgetter(i), rows))
        if keep_cells:
            cells.append(column_cells)
        column, not_numbers = _parse_numbers(column_cells)
        values[:, j] = column
        for index in not_numbers:
            try:
                mark = read_mark(column_cells[index], index, j)
            except MarkError as error:
                problems.append(CellProblem(index, j, str(error)))
                continue
            if mark is None:
                problems.append(CellProblem(index, j, _describe_bad_number(column_cells[index])))
            else:
                marks.append(mark)
    return values, marks, problems, cells


def _records(body: str, layout: _Layout, max_rows: int | None) -> list[list[str]]:
    """The data records, each as wide as the header, or a TableError naming the row."""
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
    return rows


def _groups(cells: list[str], header: str) -> list[str | None]:
    """Group labels (a class, a division): stripped, empty → None, at most 50 characters."""
    groups: list[str | None] = []
    for index, cell in enumerate(cells):
        label = cell.strip()
        problem = group_label_problem(label)
        if problem is not None:
            raise TableError(
                f"row {index + 1}, column {header!r}: {problem}", row=index + 1, column=header
            )
        groups.append(label or None)
    return groups


def _table(
    layout: _Layout,
    ids: Sequence[str] | None,
    groups: list[str | None] | None,
    values: npt.NDArray[np.float64],
) -> GradeTable:
    return GradeTable(
        headers=layout.headers,
        keys=layout.keys,
        id_header=layout.id_header,
        ids=ids,
        values=values,
        group_header=layout.group_header,
        groups=groups,
        ignored=layout.ignored,
    )


def _parse_numbers(cells: list[str]) -> tuple[npt.NDArray[np.float64], list[int]]:
    """The cells as floats (NaN where not) and the indices of the cells that are not.

    A cell is a number when, stripped and with ',' read as '.', it is an ASCII float literal
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
                return column, []
    numbers = [_parse_number(cell) for cell in cells]
    bad = [i for i, number in enumerate(numbers) if number is None]
    column = np.array([math.nan if number is None else number for number in numbers])
    return column, bad


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
    """What kind of value a cell holds instead of a grade, never the value itself: it may be
    a pupil's name."""
    text = cell.strip()
    if re.fullmatch(r"[+-]?\d{1,3}(?:[ \u00a0\u202f.,']\d{3})+(?:[.,]\d+)?", text):
        return "a number with a thousands separator; write it without"
    if re.fullmatch(r"[+-]?(?:nan|inf|infinity)", text, re.IGNORECASE):
        return "a value that is not a finite number"
    if any(c.isdigit() for c in text):
        return "a value that is not a number"
    return "text that is not a number, nor a known mark such as Abs or 15/20"
