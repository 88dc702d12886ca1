"""Predictions h_Θ(x) = w0 + Σ wj·xj for a batch of pupils, as one numpy operation.

Parsing is strict (the version's features exactly, JSON numbers only, finite, inside
the grade range), so a school's mistake is a 422 naming the pupil and the column, never
a silently wrong grade.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import ValidationError

from app.core.errors import InvalidInput, PayloadTooLarge
from app.db.models import ModelVersion
from app.engine import IntervalDesign, contributions, interval_half_width
from app.schemas.predict import PredictRequest
from app.services.cohorts import csv_error, students_to_matrix
from app.services.grades import check_grades
from app.services.jsonbody import load_json_object
from app.tabular import (
    TableError,
    TooManyRowsError,
    detect_dialect,
    read_grade_csv,
    write_csv,
)

Array = npt.NDArray[np.float64]

# Output is rounded to a millionth of a grade point: 0.33·38 is written 12.54, not
# 12.540000000000001. Contributions are rounded alike, so they add up to `raw` within 1e-5.
DECIMALS = 6


@dataclass(frozen=True)
class VersionSnapshot:
    """What /predict needs of one model version; immutable, shared by concurrent requests."""

    model: str
    version: int
    features: tuple[str, ...]
    target: str
    grade_min: float
    grade_max: float
    intercept: float
    theta: Array
    interval_design: IntervalDesign | None
    residual_std: float | None
    n_train: int | None
    feature_min: Array | None
    feature_max: Array | None
    trained_at: str
    cohort_id: str | None

    @classmethod
    def of(cls, model_name: str, version: ModelVersion) -> "VersionSnapshot":
        return cls(
            model=model_name,
            version=version.version,
            features=tuple(version.features),
            target=version.target,
            grade_min=version.grade_min,
            grade_max=version.grade_max,
            intercept=float(version.theta[0]),
            theta=_frozen(version.theta),
            interval_design=None
            if version.interval_design is None
            else IntervalDesign.from_json(version.interval_design),
            residual_std=version.residual_std,
            n_train=version.n_train,
            feature_min=None if version.feature_min is None else _frozen(version.feature_min),
            feature_max=None if version.feature_max is None else _frozen(version.feature_max),
            trained_at=_iso(version.created_at),
            cohort_id=None if version.cohort_id is None else str(version.cohort_id),
        )


def _frozen(values: list[float]) -> Array:
    array = np.asarray(values, dtype=np.float64)
    array.flags.writeable = False
    return array


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Batch:
    """Pupils to predict: optional ids and one row of grades in the version's feature order."""

    ids: list[str] | None
    values: Array


@dataclass(frozen=True)
class Predictions:
    raw: Array
    prediction: Array
    interval_low: Array | None
    interval_high: Array | None
    contributions: Array  # (n, p): wj·xj; the intercept is the same for every pupil
    extrapolated: npt.NDArray[np.bool_]


def predict(snapshot: VersionSnapshot, values: Array) -> Predictions:
    raw, terms = contributions(snapshot.theta, values)
    prediction = np.clip(raw, snapshot.grade_min, snapshot.grade_max)
    low = high = None
    half_width = interval_half_width(
        values,
        design=snapshot.interval_design,
        residual_std=snapshot.residual_std,
        n_train=snapshot.n_train,
    )
    if half_width is not None:
        # The interval is for a grade, so it is clipped into the grade range too.
        low = np.clip(raw - half_width, snapshot.grade_min, snapshot.grade_max)
        high = np.clip(raw + half_width, snapshot.grade_min, snapshot.grade_max)
    if snapshot.feature_min is not None and snapshot.feature_max is not None:
        outside = (values < snapshot.feature_min) | (values > snapshot.feature_max)
        extrapolated: npt.NDArray[np.bool_] = np.asarray(outside.any(axis=1))
    else:
        extrapolated = np.zeros(values.shape[0], dtype=np.bool_)
    return Predictions(
        raw=np.round(raw, DECIMALS),
        prediction=np.round(prediction, DECIMALS),
        interval_low=None if low is None else np.round(low, DECIMALS),
        interval_high=None if high is None else np.round(high, DECIMALS),
        contributions=np.round(terms, DECIMALS),
        extrapolated=extrapolated,
    )


@dataclass(frozen=True)
class JsonRequest:
    model: str
    version: int | None
    students: list[Any]


def parse_json_request(body: bytes, max_rows: int) -> JsonRequest:
    """The envelope, checked by its schema; the pupils are checked against the version later."""
    document = load_json_object(body)
    students = document.get("students")
    if isinstance(students, list) and len(students) > max_rows:
        raise PayloadTooLarge(
            f"{len(students)} pupils is over the limit of {max_rows} per request "
            "(GRADECAST_MAX_PREDICT_ROWS)",
            loc=["body", "students"],
        )
    # The schema sees one pupil: the others are checked column by column, not one by one.
    envelope = dict(document)
    if isinstance(students, list):
        envelope["students"] = students[:1]
    try:
        spec = PredictRequest.model_validate(envelope)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc: list[str | int] = ["body", *first["loc"]]
        raise InvalidInput(f"{'.'.join(map(str, first['loc']))}: {first['msg']}", loc=loc) from None
    assert isinstance(students, list)
    return JsonRequest(model=spec.model, version=spec.version, students=students)


def json_batch(snapshot: VersionSnapshot, students: list[Any]) -> Batch:
    ids, values = students_to_matrix(students, snapshot.features, field="students")
    check_grades(
        values,
        snapshot.features,
        (snapshot.grade_min, snapshot.grade_max),
        ids=ids,
        field="students",
        one_based_rows=False,
    )
    return Batch(ids=ids, values=values)


def _json_cells(values: Array) -> list[bytes]:
    """Each number of a 1-d array as JSON text, written by orjson in one call."""
    return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def render_json(snapshot: VersionSnapshot, batch: Batch, result: Predictions) -> bytes:
    """The response, built column by column: numbers are written to JSON text by orjson a
    whole column at a time and each pupil is one bytes template (no dict per pupil)."""
    n = batch.values.shape[0]
    ids = list(map(orjson.dumps, batch.ids)) if batch.ids is not None else [b"null"] * n
    if result.interval_low is None or result.interval_high is None:
        interval = [[b"null"] * n]
        interval_template = b"%b"
    else:
        interval = [_json_cells(result.interval_low), _json_cells(result.interval_high)]
        interval_template = b"[%b,%b]"
    contributions = [
        _json_cells(np.ascontiguousarray(result.contributions[:, j]))
        for j in range(result.contributions.shape[1])
    ]
    extrapolated = [b"true" if flag else b"false" for flag in result.extrapolated.tolist()]
    intercept = orjson.dumps(round(snapshot.intercept, DECIMALS))
    pupil = b"".join(
        [
            b'{"id":%b,"prediction":%b,"raw":%b,"interval":',
            interval_template,
            b',"contributions":{"intercept":',
            intercept.replace(b"%", b"%%"),
            *(b"," + orjson.dumps(name) + b":%b" for name in snapshot.features),
            b'},"extrapolated":%b}',
        ]
    )
    rows = [
        pupil % cells
        for cells in zip(
            ids,
            _json_cells(result.prediction),
            _json_cells(result.raw),
            *interval,
            *contributions,
            extrapolated,
            strict=True,
        )
    ]
    head = orjson.dumps(
        {
            "model": snapshot.model,
            "version": snapshot.version,
            "target": snapshot.target,
            "trained_at": snapshot.trained_at,
            "cohort_id": snapshot.cohort_id,
        }
    )
    return head[:-1] + b',"predictions":[' + b",".join(rows) + b"]}"


@dataclass(frozen=True)
class CsvTable:
    headers: list[str]
    keys: list[str]
    id_header: str | None
    ids: list[str] | None
    values: Array
    delimiter: str
    decimal_comma: bool
    bom: bool


def parse_csv_request(data: bytes, *, charset: str | None, max_rows: int) -> CsvTable:
    try:
        table = read_grade_csv(data, id_column="id", charset=charset, max_rows=max_rows)
        delimiter, decimal_comma = detect_dialect(data, charset=charset)
    except TooManyRowsError:
        raise PayloadTooLarge(
            f"more than {max_rows} pupils per request (GRADECAST_MAX_PREDICT_ROWS)",
            loc=["body", "csv"],
        ) from None
    except TableError as exc:
        raise csv_error(exc) from None
    if table.values.shape[0] == 0:
        raise InvalidInput("the CSV has a header but no pupil rows", loc=["body", "csv"])
    return CsvTable(
        headers=table.headers,
        keys=table.keys,
        id_header=table.id_header,
        ids=table.ids,
        values=table.values,
        delimiter=delimiter,
        decimal_comma=decimal_comma,
        bom=data.startswith(b"\xef\xbb\xbf"),
    )


def csv_batch(snapshot: VersionSnapshot, table: CsvTable) -> Batch:
    """The CSV's columns, matched by API name to the version's features, in its order."""
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
                f"version {snapshot.version} uses {list(snapshot.features)} (and an optional id)",
                loc=["body", "csv", 0, table.headers[j]],
            )
    order = [position[feature] for feature in snapshot.features]
    values = np.ascontiguousarray(table.values[:, order])
    labels = [table.headers[j] for j in order]
    check_grades(
        values,
        labels,
        (snapshot.grade_min, snapshot.grade_max),
        ids=table.ids,
        field="csv",
        one_based_rows=True,
    )
    return Batch(ids=table.ids, values=values)


def render_csv(table: CsvTable, result: Predictions) -> bytes:
    """The request's columns, then prediction, raw and the interval, in the request's dialect."""
    header: list[str] = []
    columns: list[Any] = []
    if table.ids is not None and table.id_header is not None:
        header.append(table.id_header)
        columns.append(table.ids)
    header.extend(table.headers)
    columns.extend(table.values[:, j] for j in range(table.values.shape[1]))
    n = table.values.shape[0]
    empty = [None] * n
    header.extend(["prediction", "raw", "interval_low", "interval_high"])
    columns.extend(
        [
            result.prediction,
            result.raw,
            empty if result.interval_low is None else result.interval_low,
            empty if result.interval_high is None else result.interval_high,
        ]
    )
    return write_csv(
        header,
        columns,
        delimiter=table.delimiter,
        decimal_comma=table.decimal_comma,
        bom=table.bom,
    )


def answer_json(snapshot: VersionSnapshot, students: list[Any]) -> bytes:
    batch = json_batch(snapshot, students)
    return render_json(snapshot, batch, predict(snapshot, batch.values))


def answer_csv(snapshot: VersionSnapshot, table: CsvTable) -> bytes:
    batch = csv_batch(snapshot, table)
    return render_csv(table, predict(snapshot, batch.values))
