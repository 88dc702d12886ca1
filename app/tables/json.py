"""Tables of pupils in JSON bodies, parsed by orjson and checked column by column (a
million pupils through pydantic one by one would cost seconds); the envelope around them is
checked by its pydantic schema."""

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from app.core.errors import InvalidInput
from app.tables.ids import id_problem
from app.tables.names import ID_NAME

Schema = TypeVar("Schema", bound=BaseModel)


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
        first = exc.errors()[0]
        loc: list[str | int] = ["body", *first["loc"]]
        raise InvalidInput(f"{'.'.join(map(str, first['loc']))}: {first['msg']}", loc=loc) from None


def students_to_matrix(
    students: list[Any], columns: Sequence[str], *, field: str
) -> tuple[list[str] | None, np.ndarray]:
    """JSON pupils → (ids, float64 matrix in ``columns`` order); 422 naming pupil and column."""
    has_ids = _check_keys(students, columns, field)
    n = len(students)
    values = np.empty((n, len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        cells = [s[column] for s in students]
        kinds = set(map(type, cells))
        if not kinds <= {int, float}:
            bad = next(i for i, v in enumerate(cells) if type(v) not in (int, float))
            raise InvalidInput(
                f"{field}[{bad}], column {column!r}: the grade must be a JSON number",
                loc=["body", field, bad, column],
            )
        try:
            values[:, j] = cells
        except OverflowError:
            bad = next(i for i, v in enumerate(cells) if abs(v) > 1e308)
            raise InvalidInput(
                f"{field}[{bad}], column {column!r}: the grade is not a finite number",
                loc=["body", field, bad, column],
            ) from None
    return (_ids(students, field) if has_ids else None), values


def _check_keys(students: list[Any], columns: Sequence[str], field: str) -> bool:
    """Every pupil an object with exactly ``columns``, and an id for all or none; whether
    they have ids."""
    expected = set(columns)
    with_id = expected | {ID_NAME}
    has_ids: bool | None = None
    for i, student in enumerate(students):
        if not isinstance(student, dict):
            raise InvalidInput(f"{field}[{i}] must be an object", loc=["body", field, i])
        keys = student.keys()
        if keys != expected and keys != with_id:
            missing = sorted(expected - keys)
            extra = sorted(keys - with_id)
            if missing:
                raise InvalidInput(
                    f"{field}[{i}] has no value for {missing[0]!r}",
                    loc=["body", field, i, missing[0]],
                )
            raise InvalidInput(
                f"{field}[{i}] has an unknown column {extra[0]!r}; expected {sorted(expected)}",
                loc=["body", field, i, extra[0]],
            )
        row_has_id = ID_NAME in keys
        if has_ids is None:
            has_ids = row_has_id
        elif row_has_id != has_ids:
            raise InvalidInput(
                f"{field}[{i}]: either every pupil has an id or none has",
                loc=["body", field, i, ID_NAME],
            )
    return bool(has_ids)


def _ids(students: list[Any], field: str) -> list[str]:
    ids = []
    for i, student in enumerate(students):
        raw = student[ID_NAME]
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
