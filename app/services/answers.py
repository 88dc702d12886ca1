"""The answer of /predict, in JSON or in the CSV dialect of the request."""

import functools
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
import orjson

from app.services.batches import (
    Batch,
    CsvTable,
    JsonRequest,
    PupilError,
    csv_batch,
    feature_order,
    json_batch,
)
from app.services.predict import (
    DECIMALS,
    OnePrediction,
    Predictions,
    VersionSnapshot,
    predict,
    predict_one,
)
from app.tables import Verbatim, spreadsheet_safe, write_csv
from app.tables._pupiljson import write_pupils
from app.tables.ids import PackedIds


def answer_json(
    snapshot: VersionSnapshot,
    request: JsonRequest,
    *,
    full: bool = True,
    batch: Batch | None = None,
) -> tuple[bytes, Batch]:
    """The JSON answer; without `full` (fields=prediction), no interval, no contributions.
    ``batch``: the request's pupils, when already read (typed_json_batch)."""
    if batch is None:
        batch = json_batch(snapshot, request)
    if batch.values.shape[0] == 1 and not batch.errors:
        one = predict_one(snapshot, batch.values[0].tolist(), full=full)
        return render_one_json(snapshot, batch, one, full=full), batch
    return render_json(
        snapshot, batch, predict(snapshot, batch.values, full=full), full=full
    ), batch


def answer_csv(
    snapshot: VersionSnapshot, request: CsvTable, *, full: bool = True
) -> tuple[bytes, Batch]:
    batch = csv_batch(snapshot, request)
    result = predict(snapshot, batch.values, full=full)
    return render_csv(snapshot, request, batch, result, full=full), batch


def _json_error(error: PupilError) -> bytes:
    return orjson.dumps({"code": error.code, "loc": error.loc, "msg": error.msg})


def _pupil_template(
    snapshot: VersionSnapshot, *, interval: bool, full: bool, skip: bool
) -> tuple[bytes, ...]:
    """One pupil's JSON as the text before, between and after its figures: id, prediction,
    raw, the interval (two or one null), each contribution, extrapolated."""
    return _template(snapshot.features, snapshot.intercept, interval, full, skip)


# Where a figure goes in a template; no JSON text the templates are made of holds a NUL.
_FIGURE = b"\0"


# Both are made once per version and form, not once per request (a 1-pupil answer is
# microseconds): keyed by the figures they are made of.
@functools.lru_cache(maxsize=1024)
def _template(
    features: tuple[str, ...], intercept: float, interval: bool, full: bool, skip: bool
) -> tuple[bytes, ...]:
    if not full:
        middle = [b',"extrapolated":', _FIGURE]
    else:
        middle = [
            b',"interval":',
            b"[%b,%b]" % (_FIGURE, _FIGURE) if interval else _FIGURE,
            b',"contributions":{"intercept":',
            orjson.dumps(round(intercept, DECIMALS)),
            *(b"," + orjson.dumps(name) + b":" + _FIGURE for name in features),
            b'},"extrapolated":',
            _FIGURE,
        ]
    template = b"".join(
        [
            b'{"id":',
            _FIGURE,
            b',"prediction":',
            _FIGURE,
            b',"raw":',
            _FIGURE,
            *middle,
            b',"error":null}' if skip else b"}",
        ]
    )
    return tuple(template.split(_FIGURE))


def _fill_template(template: tuple[bytes, ...], figures: list[bytes]) -> bytes:
    return b"".join(chain.from_iterable(zip(template[:-1], figures, strict=True))) + template[-1]


def _head(snapshot: VersionSnapshot) -> bytes:
    return _head_of(
        snapshot.model, snapshot.version, snapshot.target, snapshot.trained_at, snapshot.cohort_id
    )


@functools.lru_cache(maxsize=1024)
def _head_of(
    model: str, version: int, target: str, trained_at: str, cohort_id: str | None
) -> bytes:
    head = orjson.dumps(
        {
            "model": model,
            "version": version,
            "target": target,
            "trained_at": trained_at,
            "cohort_id": cohort_id,
        }
    )
    return head[:-1] + b',"predictions":['


def render_one_json(
    snapshot: VersionSnapshot, batch: Batch, one: OnePrediction, *, full: bool
) -> bytes:
    """The answer for one valid pupil, from Python floats: the same bytes as render_json's."""
    ident = orjson.dumps(batch.ids[0]) if batch.ids is not None else b"null"
    dumps = orjson.dumps
    cells = [ident, dumps(one.prediction), dumps(one.raw)]
    if full:
        if one.interval is None:
            cells.append(b"null")
        else:
            cells.extend((dumps(one.interval[0]), dumps(one.interval[1])))
        assert one.contributions is not None
        cells.extend(map(dumps, one.contributions))
    cells.append(b"true" if one.extrapolated else b"false")
    template = _pupil_template(
        snapshot, interval=one.interval is not None, full=full, skip=batch.skip
    )
    return _head(snapshot) + _fill_template(template, cells) + b"]}"


def render_json(
    snapshot: VersionSnapshot, batch: Batch, result: Predictions, *, full: bool = True
) -> bytes:
    """The response, written in C (_pupiljson.write_pupils): each pupil is its template's
    text with its figures, taken from the columns of the result, numbers as orjson writes
    them (no dict, no Python object per pupil). With on_error=skip every pupil also has an
    `error`: null, or what kept it from a prediction. Without `full`, the interval and the
    contributions are left out."""
    n = batch.values.shape[0]
    interval: list[object] = []
    contributions: list[object] = []
    has_interval = result.interval_low is not None and result.interval_high is not None
    if full:
        if result.interval_low is None or result.interval_high is None:
            interval = [b"null"]
        else:
            interval = [result.interval_low, result.interval_high]
        assert result.contributions is not None
        contributions = [
            np.ascontiguousarray(result.contributions[:, j])
            for j in range(result.contributions.shape[1])
        ]
    template = _pupil_template(snapshot, interval=has_interval, full=full, skip=batch.skip)
    figures = (
        _id_figure(batch.ids),
        np.ascontiguousarray(result.prediction, dtype=np.float64),
        np.ascontiguousarray(result.raw, dtype=np.float64),
        *interval,
        *contributions,
        np.ascontiguousarray(result.extrapolated, dtype=bool),
    )
    replaced = {
        row: _failed_pupil(batch, row, error, full=full) for row, error in batch.errors.items()
    }
    return write_pupils(_head(snapshot), template, figures, n, replaced, b"]}", orjson.dumps)


def _id_figure(ids: Sequence[str] | None) -> object:
    """The ids as write_pupils takes them: packed ids as their text and starts, without a
    str object per id."""
    if ids is None:
        return b"null"
    if isinstance(ids, PackedIds):
        return (ids.text, np.ascontiguousarray(ids.starts, dtype=np.int64))
    return list(ids)


def _failed_pupil(batch: Batch, row: int, error: PupilError, *, full: bool) -> bytes:
    ident = orjson.dumps(batch.ids[row]) if batch.ids is not None else b"null"
    nothing = b'"interval":null,"contributions":null,' if full else b""
    return b'{"id":%b,"prediction":null,"raw":null,%b"extrapolated":null,"error":%b}' % (
        ident,
        nothing,
        _json_error(error),
    )


def render_csv(
    snapshot: VersionSnapshot,
    request: CsvTable,
    batch: Batch,
    result: Predictions,
    *,
    full: bool = True,
) -> bytes:
    """The id and the feature columns as sent, then prediction, raw, the interval (unless
    not `full`) and extrapolated (with on_error=skip, status and error too), in the
    request's dialect."""
    table = request.table
    header: list[str] = []
    columns: list[Any] = []
    if table.ids is not None and table.id_header is not None:
        header.append(table.id_header)
        columns.append(table.ids)
    cells = table.cells or []
    for j in sorted(feature_order(snapshot, table)):  # in the request's order
        header.append(table.headers[j])
        columns.append([_as_sent(cell) for cell in cells[j]])
    n = table.values.shape[0]
    empty: list[Any] = [None] * n
    valid = batch.valid
    header.extend(["prediction", "raw"])
    columns.extend(
        [np.where(valid, result.prediction, np.nan), np.where(valid, result.raw, np.nan)]
    )
    if full:
        header.extend(["interval_low", "interval_high"])
        for bound in (result.interval_low, result.interval_high):
            columns.append(empty if bound is None else np.where(valid, bound, np.nan))
    header.append("extrapolated")
    columns.extend(
        [
            [
                ("true" if flag else "false") if ok else None
                for flag, ok in zip(result.extrapolated.tolist(), valid.tolist(), strict=True)
            ],
        ]
    )
    if batch.skip:
        errors = [batch.errors.get(row) for row in range(n)]
        header.extend(["status", "error"])
        columns.append(["ok" if e is None else e.code for e in errors])
        columns.append([None if e is None else e.msg for e in errors])
    return write_csv(
        header,
        columns,
        delimiter=request.delimiter,
        decimal_comma=request.decimal_comma,
        bom=request.bom,
    )


def _as_sent(cell: str) -> str:
    """A grade cell echoed as the school wrote it (13 stays 13, 12,5 stays 12,5); text that a
    spreadsheet would run as a formula goes behind an apostrophe, as everywhere."""
    text = cell.strip()
    safe = spreadsheet_safe(text)
    if safe != text and _is_number(text):
        return Verbatim(text)  # a negative grade is a number, not a formula
    return safe


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True
