"""Tables of pupils in JSON bodies, parsed by orjson and checked column by column (a
million pupils through pydantic one by one would cost seconds); the envelope around them is
checked by its pydantic schema.

A grade is a JSON number; a mark (see marks.py) is its code as a string (`"Abs"`,
`"15/20"`) or null, when the caller accepts marks.
"""

import re
from collections import deque
from collections.abc import KeysView, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from app.core.errors import InvalidInput, input_errors
from app.tables._pupiljson import read_column, read_ids, read_pupils
from app.tables.csv import CellProblem
from app.tables.ids import (
    SEPARATOR,
    PackedIds,
    first_bad_id,
    group_label_problem,
    id_problem,
    packed_ids_valid,
)
from app.tables.marks import Mark, MarkError, read_mark
from app.tables.names import ID_NAME, unknown_name_message

Schema = TypeVar("Schema", bound=BaseModel)

# A cell of the wrong JSON type (a list, a boolean, or text where marks are not taken).
NOT_A_NUMBER = "the grade must be a JSON number"


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON ({exc})", loc=["body"]) from None
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object", loc=["body"])
    return document


def parse_envelope(schema: type[Schema], envelope: dict[str, Any]) -> Schema:
    """The body without its table, validated by its schema; the first error is a 422."""
    try:
        return schema.model_validate(envelope)
    except ValidationError as exc:
        errors = input_errors(exc.errors(), prefix=["body"])
        first = errors[0]
        where = ".".join(map(str, first["loc"][1:]))
        raise InvalidInput(f"{where}: {first['msg']}", errors=errors) from None


@dataclass(frozen=True)
class PupilTable:
    """JSON pupils as columns: `values[i, j]` is pupil i's `columns[j]`, NaN where `marks`
    or `problems` say what the cell holds instead."""

    ids: Sequence[str] | None
    values: np.ndarray
    groups: list[str | None] | None = None
    marks: list[Mark] = field(default_factory=list)
    problems: list[CellProblem] = field(default_factory=list)


def students_to_matrix(
    students: list[Any],
    columns: Sequence[str],
    *,
    field: str,
    group_key: str | None = None,
    accept_marks: bool = False,
    collect_problems: bool = False,
) -> PupilTable:
    """JSON pupils → ids and a float64 matrix in ``columns`` order; a 422 naming pupil and
    column for the first problem, or with `collect_problems` every problem of every pupil."""
    if len(students) == 1 and group_key is None:
        one = _one_pupil(students[0], columns)
        if one is not None:
            return one
    problems: list[CellProblem] = []
    has_ids = _check_keys(students, columns, field, group_key, problems, collect_problems)
    n = len(students)
    if n <= _ROW_WISE_MAX and not problems:
        values = _numbers_only(students, columns)
        if values is not None:
            groups = _groups(students, group_key, field) if group_key is not None else None
            return PupilTable(_ids(students, field) if has_ids else None, values, groups)
    values = np.full((n, len(columns)), np.nan)
    marks: list[Mark] = []
    broken = {problem.row for problem in problems}
    for j, column in enumerate(columns):
        if broken:
            cells = [None if i in broken else s.get(column) for i, s in enumerate(students)]
        else:  # every pupil is an object with this key: read in one call
            cells = list(map(itemgetter(column), students))
        if set(map(type, cells)) <= _NUMBER_TYPES and _fill(values, j, cells):
            continue
        for i, cell in enumerate(cells):
            if i in broken:
                continue
            number, mark, what = _read_cell(cell, i, j, accept_marks)
            if what is not None:
                if not collect_problems:
                    raise InvalidInput(
                        f"{field}[{i}], column {column!r}: {what}",
                        loc=["body", field, i, column],
                        type="wrong_type" if what is NOT_A_NUMBER else "invalid_input",
                    )
                problems.append(CellProblem(i, j, what))
            elif mark is not None:
                marks.append(mark)
            else:
                values[i, j] = number
    marks.sort(key=lambda m: (m.row, m.column))
    problems.sort(key=lambda p: (p.row, p.column if p.column is not None else -1))
    groups = _groups(students, group_key, field) if group_key is not None else None
    ids = _ids(students, field) if has_ids else None
    return PupilTable(ids, values, groups, marks, problems)


def typed_students(raw: bytes | memoryview, columns: Sequence[str]) -> PupilTable | None:
    """A JSON list of pupils in the usual shape, every one an object of exactly ``columns``
    as finite JSON numbers, with a valid id for all or none, read in one pass in C
    (_pupiljson.read_pupils, without the GIL): no Python object per pupil, the ids packed.
    None for anything else (a mark, a missing or unknown key, an invalid id, not a list…):
    students_to_matrix then reads the pupils and says what is wrong, as always."""
    read = read_pupils(raw, tuple(columns), ID_NAME, SEPARATOR.encode())
    if read is None:
        return None
    n, cells, text, starts = read
    values = np.frombuffer(cells, dtype=np.float64).reshape(n, len(columns))
    if text is None or starts is None:
        return PupilTable(None, values)
    ids = _checked_packed_ids(text, starts)
    return None if ids is None else PupilTable(ids, values)


def typed_columns(
    columns: dict[str, memoryview], ids: memoryview | None, names: Sequence[str]
) -> PupilTable | None:
    """A columnar body in the usual shape, one list of finite JSON numbers per feature,
    all of one length, and valid ids for all or none, read in C one list at a time
    (_pupiljson.read_column and read_ids); None for anything else, which
    columns_to_matrix then reads and says what is wrong with, as always."""
    if columns.keys() != set(names):
        return None
    read = [read_column(columns[name]) for name in names]
    lengths = {len(cells) for cells in read if cells is not None}
    if None in read or len(lengths) != 1:
        return None
    n = lengths.pop() // 8
    values = np.empty((n, len(names)))
    for j, cells in enumerate(read):
        values[:, j] = np.frombuffer(cells, dtype=np.float64)  # type: ignore[arg-type]
    if ids is None:
        return PupilTable(None, values)
    packed = read_ids(ids, SEPARATOR.encode())
    if packed is None:
        return None
    checked = _checked_packed_ids(*packed)
    if checked is None or len(checked) != n:
        return None
    return PupilTable(checked, values)


def _checked_packed_ids(text: str, starts: bytes) -> Sequence[str] | None:
    """Ids read in C, packed, when each is valid (stripped if need be); else None."""
    packed = PackedIds([text], np.frombuffer(starts, dtype=np.int64), [0])
    if packed_ids_valid(packed):
        return packed
    return _valid_ids(list(packed))  # ids to strip, or one that is not valid


def columns_to_matrix(
    columns: dict[str, Any],
    ids: list[Any] | None,
    names: Sequence[str],
    *,
    field: str = "columns",
    accept_marks: bool = False,
    collect_problems: bool = False,
) -> PupilTable:
    """A columnar body, ``{"maths": [...], ...}`` and optional ``ids``, → the table that
    students_to_matrix gives for the same pupils; problems are located as
    ``[field, column, row]``. One list per column is read in one assignment."""
    expected = set(names)
    if columns.keys() != expected:
        missing = sorted(expected - columns.keys())
        extra = sorted(columns.keys() - expected)
        if missing:
            raise InvalidInput(f"{field} has no {missing[0]!r}", loc=["body", field, missing[0]])
        raise InvalidInput(
            f"{field} has an unknown column {extra[0]!r}; expected {sorted(expected)}",
            loc=["body", field, extra[0]],
        )
    n = len(columns[names[0]])
    for name in names:
        if len(columns[name]) != n:
            raise InvalidInput(
                f"{field}.{name} has {len(columns[name])} values, {names[0]!r} has {n}",
                loc=["body", field, name],
            )
    if ids is not None and len(ids) != n:
        raise InvalidInput(f"ids has {len(ids)} values for {n} pupils", loc=["body", "ids"])
    values = np.full((n, len(names)), np.nan)
    marks: list[Mark] = []
    problems: list[CellProblem] = []
    for j, name in enumerate(names):
        cells = columns[name]
        if set(map(type, cells)) <= _NUMBER_TYPES and _fill(values, j, cells):
            continue
        for i, cell in enumerate(cells):
            number, mark, what = _read_cell(cell, i, j, accept_marks)
            if what is not None:
                if not collect_problems:
                    raise InvalidInput(f"{field}.{name}[{i}]: {what}", loc=["body", field, name, i])
                problems.append(CellProblem(i, j, what))
            elif mark is not None:
                marks.append(mark)
            else:
                values[i, j] = number
    marks.sort(key=lambda m: (m.row, m.column))
    problems.sort(key=lambda p: (p.row, p.column if p.column is not None else -1))
    return PupilTable(_column_ids(ids), values, None, marks, problems)


def _column_ids(raws: list[Any] | None) -> list[str] | None:
    if raws is None:
        return None
    valid = _valid_ids(raws)
    if valid is not None:
        return valid
    ids = []
    for i, raw in enumerate(raws):
        if type(raw) not in (str, int):
            raise InvalidInput(f"ids[{i}] must be a string or an integer", loc=["body", "ids", i])
        ident = str(raw).strip()
        problem = id_problem(ident)
        if problem is not None:
            raise InvalidInput(f"ids[{i}]: {problem}", loc=["body", "ids", i])
        ids.append(ident)
    return ids


# Up to this many pupils, numbers are read row by row in one call (a 1-pupil request in a
# third of the time); beyond, column by column (np.array of many short lists is slow).
_ROW_WISE_MAX = 16
_NUMBER_TYPES = {int, float}


def _numbers_only(students: list[Any], columns: Sequence[str]) -> np.ndarray | None:
    """The pupils' grades when every cell is a JSON number within float range; else None."""
    rows = [[student[column] for column in columns] for student in students]
    if not set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
        return None
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    except OverflowError:
        return None


def _one_pupil(student: Any, columns: Sequence[str]) -> PupilTable | None:
    """A lone pupil (most /predict requests) that is exactly ``columns`` as JSON numbers, with
    or without a valid id, read in a few calls; None for anything else, which the general
    reader then reads, says what is wrong with, or collects. The same table as that reader's
    (a hypothesis property in tests/test_tables.py compares them)."""
    if type(student) is not dict or ID_NAME in columns:
        return None
    has_id = ID_NAME in student
    if len(student) != len(columns) + has_id:
        return None
    try:
        cells = [student[column] for column in columns]
    except KeyError:
        return None
    if not set(map(type, cells)) <= _NUMBER_TYPES:
        return None
    ids = None
    if has_id:
        ids = _valid_ids([student[ID_NAME]])
        if ids is None:
            return None
    try:
        values = np.array([cells], dtype=np.float64)
    except OverflowError:
        return None
    return PupilTable(ids, values)


def _fill(values: np.ndarray, j: int, cells: list[Any]) -> bool:
    """Numbers only: the column in one assignment; False when one is out of float range."""
    try:
        values[:, j] = np.array(cells, dtype=np.float64)  # faster than assigning the list
    except OverflowError:
        return False
    return True


def _read_cell(
    cell: Any, row: int, column: int, accept_marks: bool
) -> tuple[float, Mark | None, str | None]:
    """(number, mark, problem) of one cell; exactly one of them says what it holds."""
    if type(cell) in (int, float):
        try:
            number = float(cell)
        except OverflowError:  # an integer beyond the float range
            number = np.inf
        if np.isfinite(number):
            return number, None, None
        return 0.0, None, "the grade is not a finite number"
    if accept_marks and (cell is None or isinstance(cell, str)):
        try:
            mark = read_mark("" if cell is None else cell, row, column)
        except MarkError as error:
            return 0.0, None, str(error)
        if mark is not None:
            return 0.0, mark, None
        return 0.0, None, "text that is not a number, nor a known mark such as Abs or 15/20"
    return 0.0, None, NOT_A_NUMBER


def _check_keys(
    students: list[Any],
    columns: Sequence[str],
    field: str,
    group_key: str | None,
    problems: list[CellProblem],
    collect: bool,
) -> bool:
    """Every pupil an object with exactly ``columns`` (and the group key), an id for all or
    none; whether they have ids. A pupil that breaks it is a 422, or with `collect` a
    problem of its row."""
    expected = set(columns) | ({group_key} if group_key is not None else set())
    with_id = expected | {ID_NAME}
    uniform = _same_keys(students, expected, with_id)
    if uniform is not None:
        return ID_NAME in uniform
    has_ids: bool | None = None
    for i, student in enumerate(students):
        if not isinstance(student, dict):
            _problem(
                problems, collect, i, None, None, f"{field}[{i}] must be an object", [field, i]
            )
            continue
        keys = student.keys()
        if keys != expected and keys != with_id:
            _key_problem(keys, expected, columns, field, i, problems, collect)
            continue
        row_has_id = ID_NAME in keys
        if has_ids is None:
            has_ids = row_has_id
        elif row_has_id != has_ids:
            raise InvalidInput(
                f"{field}[{i}]: either every pupil has an id or none has",
                loc=["body", field, i, ID_NAME],
            )
    return bool(has_ids)


def _same_keys(students: list[Any], *choices: set[str]) -> set[str] | None:
    """The one of ``choices`` that is every pupil's keys, or None, checked in a few calls
    over all pupils: as many keys as it has, and each of them (a missing one: KeyError)."""
    if set(map(type, students)) != {dict}:
        return None
    lengths = set(map(len, students))
    for keys in choices:
        if lengths == {len(keys)}:
            try:
                deque(map(itemgetter(*keys), students), maxlen=0)
            except KeyError:
                return None
            return keys
    return None


def _key_problem(
    keys: KeysView[str],
    expected: set[str],
    columns: Sequence[str],
    field: str,
    row: int,
    problems: list[CellProblem],
    collect: bool,
) -> None:
    """Why a pupil's keys are not the expected ones. An unknown key comes first: "Français"
    for "francais" is a misspelling, and saying that francais is missing would hide it."""
    missing = sorted(expected - keys)
    extra = sorted(keys - expected - {ID_NAME})
    if extra:
        what = f"{field}[{row}]: " + unknown_name_message(
            "column", extra[0], expected, likely=missing or None
        )
        _problem(
            problems, collect, row, None, extra[0], what, [field, row, extra[0]], "unknown_field"
        )
    else:
        column = list(columns).index(missing[0]) if missing[0] in columns else None
        what = f"{field}[{row}] has no value for {missing[0]!r}"
        _problem(
            problems, collect, row, column, missing[0], what, [field, row, missing[0]], "missing"
        )


def _problem(
    problems: list[CellProblem],
    collect: bool,
    row: int,
    column: int | None,
    label: str | None,
    what: str,
    loc: list[str | int],
    kind: str = "invalid_input",
) -> None:
    if not collect:
        raise InvalidInput(what, loc=["body", *loc], type=kind)
    problems.append(CellProblem(row, column, what, label))


def _valid_ids(raws: list[Any]) -> list[str] | None:
    """The ids as the loops of _ids and _column_ids make them, in a few calls over all of
    them, when every one is a string or an integer and a valid id; else None, and those
    loops find the first bad one and say what is wrong with it."""
    types = set(map(type, raws))
    if not types <= _ID_TYPES:
        return None
    texts = raws if types == {str} else list(map(str, raws))
    joined = "".join(texts)
    # str.strip and the pattern's \s both take str.isspace's whitespace: without any, no id
    # changes when stripped (the usual case, which saves a call per id).
    if _WHITESPACE.search(joined):
        ids = list(map(str.strip, texts))
        return ids if first_bad_id(ids) is None else None
    ids = list(texts)
    return ids if first_bad_id(ids, joined=joined) is None else None


_WHITESPACE = re.compile(r"\s")


_ID_TYPES = {str, int}  # bool is a type of its own: True is no id


def _ids(students: list[Any], field: str) -> list[str]:
    if set(map(type, students)) == {dict}:
        try:
            valid = _valid_ids(list(map(itemgetter(ID_NAME), students)))
        except KeyError:
            valid = None
        if valid is not None:
            return valid
    ids = []
    for i, student in enumerate(students):
        raw = student.get(ID_NAME) if isinstance(student, dict) else None
        if type(raw) not in (str, int) or isinstance(raw, bool):
            raise InvalidInput(
                f"{field}[{i}].id must be a string or an integer", loc=["body", field, i, ID_NAME]
            )
        ident = str(raw).strip()
        problem = id_problem(ident)
        if problem is not None:
            raise InvalidInput(f"{field}[{i}].id: {problem}", loc=["body", field, i, ID_NAME])
        ids.append(ident)
    return ids


def _groups(students: list[Any], key: str, field: str) -> list[str | None]:
    groups: list[str | None] = []
    for i, student in enumerate(students):
        raw = student.get(key)
        if raw is not None and not isinstance(raw, str):
            raise InvalidInput(
                f"{field}[{i}].{key}: a group label is a string", loc=["body", field, i, key]
            )
        label = (raw or "").strip()
        problem = group_label_problem(label)
        if problem is not None:
            raise InvalidInput(f"{field}[{i}].{key}: {problem}", loc=["body", field, i, key])
        groups.append(label or None)
    return groups
