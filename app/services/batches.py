"""Pupils to predict, read from a JSON or CSV request and checked against a version.

`on_error=refuse` (the default) answers a 422 naming the pupil and the column of the first
problem. `on_error=skip` keeps going: each invalid pupil gets an error of its own, with a
code from a small set, and the others their predictions (a class list where one pupil was
absent still gets its 29 predictions). Errors never quote a cell: it may be a name.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import orjson

from app.core.errors import InvalidInput, PayloadTooLarge
from app.schemas.predict import PredictColumnsRequest, PredictRequest
from app.services.predict import VersionSnapshot
from app.tables import (
    CellProblem,
    Columns,
    GradeTable,
    Mark,
    SpecialMarks,
    TooManyRowsError,
    all_grades,
    columns_to_matrix,
    detect_dialect,
    grade_problems,
    load_json_object,
    parse_envelope,
    read_grade_csv,
    students_to_matrix,
    typed_columns,
    typed_students,
)
from app.tables._pupiljson import read_object

OnError = Literal["refuse", "skip"]
# The codes of a skipped pupil's error.
SPECIAL_MARK = "special_mark"
NOT_A_GRADE = "not_a_grade"
OUT_OF_RANGE = "out_of_range"
INVALID_PUPIL = "invalid_pupil"


@dataclass(frozen=True)
class PupilError:
    code: str
    loc: list[str | int]
    msg: str


@dataclass(frozen=True)
class Batch:
    """Pupils to predict: optional ids and one row of grades in the version's feature order;
    with on_error=skip, the rows in `errors` are not predicted (their values are 0)."""

    ids: Sequence[str] | None
    values: np.ndarray
    errors: dict[int, PupilError] = field(default_factory=dict)
    skip: bool = False

    @property
    def valid(self) -> np.ndarray:
        mask = np.ones(self.values.shape[0], dtype=np.bool_)
        mask[list(self.errors)] = False
        return mask


@dataclass(frozen=True)
class JsonRequest:
    model: str
    version: int | None
    students: list[Any]
    on_error: OnError
    special_marks: SpecialMarks
    # A columnar body: one list per feature, and the ids (students is then empty).
    columns: dict[str, list[Any]] | None = None
    ids: list[Any] | None = None
    # A big body's pupils as JSON text, not yet read (typed_json_batch reads them once the
    # version is known; students is then empty): as objects, or as columns and their ids.
    raw_students: memoryview | None = None
    raw_columns: dict[str, memoryview] | None = None
    raw_ids: memoryview | None = None

    @property
    def unread(self) -> bool:
        """The pupils are still text (a big body): typed_json_batch reads them."""
        return self.raw_students is not None or self.raw_columns is not None

    @property
    def pupils(self) -> int:
        """How many pupils the body holds, in either form."""
        if self.columns:
            return max(
                len(values) if isinstance(values, list) else 1 for values in self.columns.values()
            )
        return len(self.students)


@dataclass(frozen=True)
class CsvOptions:
    """The query string of a CSV request: how to read it and what to do with bad pupils."""

    id_column: str | None = "id"
    features: list[str] | None = None
    special_marks: SpecialMarks = "refuse"
    on_error: OnError = "refuse"
    full: bool = True  # fields=all: with the interval and the contributions


@dataclass(frozen=True)
class CsvTable:
    """A CSV request: its table (grade cells kept as written, to echo them), its dialect,
    which the answer is written in, and how to read it."""

    table: GradeTable
    delimiter: str
    decimal_comma: bool
    bom: bool
    options: CsvOptions


def _too_many(n: int, max_rows: int, loc: list[str | int]) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{n} pupils is over the limit of {max_rows} per request (GRADECAST_MAX_PREDICT_ROWS)",
        loc=loc,
    )


# The keys of a big body read in C (_typed_request): its pupils as objects or as columns, and
# the small fields, each read by orjson. Any other key and the body is read as always.
_FIELDS = ("model", "version", "on_error", "special_marks")
_OBJECTS_KEYS = frozenset({"students", *_FIELDS})
_COLUMNS_KEYS = frozenset({"columns", "ids", *_FIELDS})


def parse_json_request(
    body: bytes, max_rows: int, on_error: OnError = "refuse", *, typed: bool = False
) -> JsonRequest:
    """The envelope, checked by its schema; the pupils are checked against the version later.
    A body with `columns` is the columnar form (`students` then is unknown). ``on_error``
    applies unless the body says it (the query string's, on /predict). With ``typed`` (big
    bodies), pupils as objects are left unread in ``raw_students``, as columns in
    ``raw_columns`` and ``raw_ids``, for typed_json_batch; the schema then sees the
    envelope with one empty pupil, or one value per column."""
    if typed:
        request = _typed_request(body, on_error)
        if request is not None:
            return request
    document = load_json_object(body)
    if "columns" in document:
        return _parse_columns_request(document, max_rows, on_error)
    students = document.get("students")
    if isinstance(students, list) and len(students) > max_rows:
        raise _too_many(len(students), max_rows, ["body", "students"])
    # The schema sees one pupil: the others are checked column by column, not one by one.
    envelope = dict(document)
    if isinstance(students, list):
        envelope["students"] = students[:1]
    spec = parse_envelope(PredictRequest, envelope)
    assert isinstance(students, list)
    return JsonRequest(
        spec.model,
        spec.version,
        students,
        spec.on_error if "on_error" in spec.model_fields_set else on_error,
        spec.special_marks,
    )


def _typed_request(body: bytes, on_error: OnError) -> JsonRequest | None:
    """The envelope of a body of pupils as objects or as columns, the pupils left as text
    (views of the body); None when it is neither or not valid: read as always, its errors
    are said in full. The body's members are found in C without the GIL (read_object);
    each is then read by its own reader, which checks all of it: orjson for the small
    fields, the C readers for the pupils (typed_json_batch)."""
    members = read_object(body)
    if members is None:
        return None
    keys = members.keys()
    objects = "students" in members
    if not (keys <= _OBJECTS_KEYS if objects else "columns" in members and keys <= _COLUMNS_KEYS):
        return None
    view = memoryview(body)
    try:
        fields = {
            name: orjson.loads(view[slice(*members[name])]) for name in _FIELDS if name in members
        }
    except orjson.JSONDecodeError:
        return None
    columns = None
    if not objects:
        inner = view[slice(*members["columns"])]
        places = read_object(inner)
        if places is None:
            return None
        columns = {name: inner[slice(*place)] for name, place in places.items()}
    # The schema sees one pupil, as for a body read as always.
    try:
        if columns is None:
            spec: PredictRequest | PredictColumnsRequest = parse_envelope(
                PredictRequest, {**fields, "students": [{}]}
            )
        else:
            spec = parse_envelope(
                PredictColumnsRequest, {**fields, "columns": {name: [0] for name in columns}}
            )
    except InvalidInput:
        return None
    request = JsonRequest(
        spec.model,
        spec.version,
        [],
        spec.on_error if "on_error" in spec.model_fields_set else on_error,
        spec.special_marks,
    )
    if columns is None:
        return replace(request, raw_students=view[slice(*members["students"])])
    ids = view[slice(*members["ids"])] if "ids" in members else None
    if ids is not None and len(ids) == 4 and ids.tobytes() == b"null":
        ids = None
    return replace(request, raw_columns=columns, raw_ids=ids)


def typed_json_batch(
    snapshot: VersionSnapshot, request: JsonRequest, max_rows: int
) -> Batch | None:
    """json_batch of a typed request's pupils, read in C when they have the usual
    shape (tables.typed_students, tables.typed_columns); None when they have not: the body
    is then read as always (parse_json_request without ``typed``), which says what is
    wrong."""
    if request.raw_columns is not None:
        table = typed_columns(request.raw_columns, request.raw_ids, snapshot.features)
        field = "columns"
        loc: list[str | int] = ["body", "columns", next(iter(request.raw_columns))]
    else:
        assert request.raw_students is not None
        table = typed_students(request.raw_students, snapshot.features)
        field, loc = "students", ["body", "students"]
    if table is None:
        return None
    if table.values.shape[0] > max_rows:
        raise _too_many(table.values.shape[0], max_rows, loc)
    return _checked(
        snapshot,
        table.ids,
        table.values,
        [],
        [],
        labels=list(snapshot.features),
        field=field,
        one_based_rows=False,
        special_marks=request.special_marks,
        skip=request.on_error == "skip",
        column_major=field == "columns",
    )


def _parse_columns_request(
    document: dict[str, Any], max_rows: int, on_error: OnError
) -> JsonRequest:
    columns = document["columns"]
    # The schema sees the first value of each list; the rest is read column by column.
    envelope = dict(document)
    if isinstance(columns, dict):
        for name, values in columns.items():
            if isinstance(values, list) and len(values) > max_rows:
                raise _too_many(len(values), max_rows, ["body", "columns", name])
        envelope["columns"] = {
            name: values[:1] if isinstance(values, list) else values
            for name, values in columns.items()
        }
    ids = document.get("ids")
    if isinstance(ids, list):
        envelope["ids"] = ids[:1]
    spec = parse_envelope(PredictColumnsRequest, envelope)
    for name, values in columns.items():
        if not values:
            raise InvalidInput(f"columns.{name} is empty", loc=["body", "columns", name])
    return JsonRequest(
        spec.model,
        spec.version,
        [],
        spec.on_error if "on_error" in spec.model_fields_set else on_error,
        spec.special_marks,
        columns=columns,
        ids=ids,
    )


def json_batch(snapshot: VersionSnapshot, request: JsonRequest) -> Batch:
    skip = request.on_error == "skip"
    labels = list(snapshot.features)
    if request.columns is not None:
        columnar = columns_to_matrix(
            request.columns,
            request.ids,
            snapshot.features,
            accept_marks=True,
            collect_problems=skip,
        )
        return _checked(
            snapshot,
            columnar.ids,
            columnar.values,
            columnar.marks,
            columnar.problems,
            labels=labels,
            field="columns",
            one_based_rows=False,
            special_marks=request.special_marks,
            skip=skip,
            column_major=True,
        )
    table = students_to_matrix(
        request.students,
        snapshot.features,
        field="students",
        accept_marks=True,
        collect_problems=skip,
    )
    return _checked(
        snapshot,
        table.ids,
        table.values,
        table.marks,
        table.problems,
        labels=labels,
        field="students",
        one_based_rows=False,
        special_marks=request.special_marks,
        skip=skip,
    )


def parse_csv_request(
    data: bytes, options: CsvOptions, *, charset: str | None, max_rows: int
) -> CsvTable:
    columns = Columns(values=options.features, id_column=options.id_column)
    try:
        table = read_grade_csv(
            data,
            columns=columns,
            charset=charset,
            max_rows=max_rows,
            collect_problems=options.on_error == "skip",
            keep_cells=True,
        )
        delimiter, decimal_comma = detect_dialect(data, charset=charset)
    except TooManyRowsError:
        raise PayloadTooLarge(
            f"more than {max_rows} pupils per request (GRADECAST_MAX_PREDICT_ROWS)",
            loc=["body", "csv"],
        ) from None
    if table.values.shape[0] == 0:
        raise InvalidInput("the CSV has a header but no pupil rows", loc=["body", "csv"])
    if options.id_column not in (None, "id") and table.ids is None:
        raise InvalidInput(
            f"id_column {options.id_column!r} is not in the header {table.headers}",
            loc=["query", "id_column"],
        )
    return CsvTable(
        table=table,
        delimiter=delimiter,
        decimal_comma=decimal_comma,
        bom=data.startswith(b"\xef\xbb\xbf"),
        options=options,
    )


def csv_batch(snapshot: VersionSnapshot, request: CsvTable) -> Batch:
    """The CSV's columns, matched by API name to the version's features, in its order."""
    table = request.table
    order = feature_order(snapshot, table)
    position = {j: k for k, j in enumerate(order)}
    marks = [
        Mark(m.row, position[m.column], m.kind, m.code, m.fraction)
        for m in table.marks
        if m.column in position
    ]
    problems = [
        CellProblem(p.row, position[p.column], p.what)
        for p in table.problems
        if p.column is not None and p.column in position
    ]
    return _checked(
        snapshot,
        None if table.ids is None else list(table.ids),
        np.ascontiguousarray(table.values[:, order]),
        marks,
        problems,
        labels=[table.headers[j] for j in order],
        field="csv",
        one_based_rows=True,
        special_marks=request.options.special_marks,
        skip=request.options.on_error == "skip",
    )


def feature_order(snapshot: VersionSnapshot, table: GradeTable) -> list[int]:
    """The table's grade column of each of the version's features; any other grade column
    is a 422 (unless `features` chose the columns, when the rest was ignored)."""
    position = {key: j for j, key in enumerate(table.keys)}
    for feature in snapshot.features:
        if feature not in position:
            raise InvalidInput(
                f"CSV: no column for the feature {feature!r}; the header has {table.headers}",
                loc=["body", "csv", 0, feature],
            )
    for j, key in enumerate(table.keys):
        if key not in snapshot.features:
            raise InvalidInput(
                f"CSV: unknown column {table.headers[j]!r}; model {snapshot.model!r} "
                f"version {snapshot.version} uses {list(snapshot.features)} (and an optional "
                "id; send features=… to ignore other columns)",
                loc=["body", "csv", 0, table.headers[j]],
            )
    return [position[feature] for feature in snapshot.features]


def checked_values(snapshot: VersionSnapshot, values: np.ndarray, *, field: str) -> np.ndarray:
    """Numbers of a columnar tensor (n, p), in the version's feature order, checked as
    /predict checks grades: a 422 naming the feature and the pupil of the first bad one."""
    if all_grades(values, (snapshot.grade_min, snapshot.grade_max)):
        return values
    labels = list(snapshot.features)
    not_finite = np.argwhere(~np.isfinite(values))
    if not_finite.size:
        row, column = (int(i) for i in not_finite[0])
        raise InvalidInput(
            f"{field}.{labels[column]}[{row}]: the grade is not a finite number",
            loc=["body", field, labels[column], row],
        )
    batch = _checked(
        snapshot,
        None,
        values,
        [],
        [],
        labels=labels,
        field=field,
        one_based_rows=False,
        special_marks="refuse",
        skip=False,
        column_major=True,
    )
    return batch.values


def _checked(
    snapshot: VersionSnapshot,
    ids: Sequence[str] | None,
    values: np.ndarray,
    marks: list[Mark],
    problems: list[CellProblem],
    *,
    labels: list[str],
    field: str,
    one_based_rows: bool,
    special_marks: SpecialMarks,
    skip: bool,
    column_major: bool = False,
) -> Batch:
    """Marks read, grades checked against the version's range: each pupil valid, or with
    the first error of its row (a 422 for the first of all unless `skip`). A columnar
    body's errors are located as [field, column, row]."""
    low, high = snapshot.grade_min, snapshot.grade_max
    if not problems and not marks and all_grades(values, (low, high)):
        return Batch(ids=ids, values=values, errors={}, skip=skip)
    values = values.copy()
    errors: dict[int, PupilError] = {}

    def where(row: int, label: str | None) -> list[str | int]:
        number = row + 1 if one_based_rows else row
        if label is None:
            return [field, number]
        return [field, label, number] if column_major else [field, number, label]

    for problem in problems:
        label = labels[problem.column] if problem.column is not None else problem.label
        code = NOT_A_GRADE if problem.column is not None else INVALID_PUPIL
        errors.setdefault(problem.row, PupilError(code, where(problem.row, label), problem.what))
    for mark in marks:
        if mark.kind == "ratio":
            values[mark.row, mark.column] = low + mark.fraction * (high - low)
        elif mark.kind == "zero" and special_marks == "drop":
            values[mark.row, mark.column] = low
        else:
            label = labels[mark.column]
            what = f"the pupil has the mark {mark.code!r} in {label!r}, not a grade"
            errors.setdefault(mark.row, PupilError(SPECIAL_MARK, where(mark.row, label), what))
    checkable = np.where(np.isnan(values), low, values)
    for row, (column, what) in grade_problems(checkable, (low, high)).items():
        errors.setdefault(row, PupilError(OUT_OF_RANGE, where(row, labels[column]), what))
    if errors and not skip:
        row = min(errors)
        error = errors[row]
        if column_major:
            raise InvalidInput(
                f"{field}.{error.loc[1]}[{row}]: {error.msg}", loc=["body", *error.loc]
            )
        place = f"row {row + 1}" if one_based_rows else f"{field}[{row}]"
        in_column = f", column {error.loc[2]!r}" if len(error.loc) > 2 else ""
        raise InvalidInput(f"{place}{in_column}: {error.msg}", loc=["body", *error.loc])
    values[list(errors)] = 0.0
    return Batch(ids=ids, values=np.nan_to_num(values, nan=0.0), errors=errors, skip=skip)
