"""/predict's columnar body, fields=prediction, and the one-pupil answer without numpy."""

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import TrainingConfig, fit
from app.services.answers import render_json, render_one_json
from app.services.batches import Batch, PupilError
from app.services.predict import Predictions, VersionSnapshot, predict, predict_one
from app.tables.ids import PackedIds
from tests.test_predict import NEW_PUPIL, post_csv, register

PUPILS = [NEW_PUPIL, {"id": "n2", "maths": 12.5, "info": 9, "francais": 15}]


def as_columns(students: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "model": "concours",
        "columns": {name: [s[name] for s in students] for name in ("maths", "info", "francais")},
        "ids": [s["id"] for s in students],
        **fields,
    }


def test_columns_answer_as_the_same_pupils_as_objects(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer, residual_std=1.2, n_train=500)
    objects = reader.post("/predict", json={"model": "concours", "students": PUPILS})
    columns = reader.post("/predict", json=as_columns(PUPILS))
    assert columns.status_code == 200, columns.text
    assert columns.content == objects.content
    assert columns.json()["predictions"][0]["prediction"] == 12.54


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda b: b["columns"].pop("info"), ["body", "columns", "info"]),
        (lambda b: b["columns"].update(art=[1, 2]), ["body", "columns", "art"]),
        (lambda b: b["columns"]["info"].pop(), ["body", "columns", "info"]),
        (lambda b: b["ids"].pop(), ["body", "ids"]),
        (lambda b: b["ids"].__setitem__(1, True), ["body", "ids", 1]),
        (lambda b: b["columns"]["info"].__setitem__(1, True), ["body", "columns", "info", 1]),
        (lambda b: b["columns"]["info"].__setitem__(1, "douze"), ["body", "columns", "info", 1]),
        (lambda b: b["columns"]["info"].__setitem__(1, 25), ["body", "columns", "info", 1]),
        (lambda b: b["columns"].update(maths=[], info=[], francais=[]), ["body", "columns"]),
        (lambda b: b.update(students=PUPILS), ["body", "students"]),
    ],
)
def test_bad_columns_are_a_422_naming_column_and_pupil(
    reader: httpx.Client, trainer: httpx.Client, change: Any, loc: list[Any]
) -> None:
    register(trainer)
    body = as_columns(PUPILS)
    change(body)
    response = reader.post("/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][: len(loc)] == loc
    assert "douze" not in response.text


def test_columns_with_on_error_skip_answer_every_pupil(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    body = as_columns(PUPILS, on_error="skip")
    body["columns"]["maths"][0] = "Abs"
    answer = reader.post("/predict", json=body).json()["predictions"]
    assert answer[0]["prediction"] is None
    assert answer[0]["error"]["loc"] == ["columns", "maths", 0]
    assert answer[1]["prediction"] == 12.045


def test_more_columnar_pupils_than_the_limit_is_413(
    reader: httpx.Client, trainer: httpx.Client, live_server: Any
) -> None:
    register(trainer)
    n = live_server.settings.max_predict_rows + 1
    body = {"model": "concours", "columns": {"maths": [1] * n, "info": [1] * n, "francais": [1]}}
    assert reader.post("/predict", json=body).status_code == 413


def test_fields_prediction_leaves_out_interval_and_contributions(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer, residual_std=1.2, n_train=500)
    for body in ({"model": "concours", "students": PUPILS}, as_columns(PUPILS)):
        full = reader.post("/predict", json=body).json()["predictions"]
        short = reader.post("/predict", json=body, params={"fields": "prediction"})
        assert short.status_code == 200, short.text
        assert short.json()["predictions"] == [
            {k: p[k] for k in ("id", "prediction", "raw", "extrapolated")} for p in full
        ]
    one = reader.post(
        "/predict",
        json={"model": "concours", "students": [NEW_PUPIL]},
        params={"fields": "prediction"},
    ).json()["predictions"]
    assert one == [{"id": "n1", "prediction": 12.54, "raw": 12.54, "extrapolated": False}]
    csv = post_csv(reader, "id;maths;info;francais\nn1;13;14;11\n", fields="prediction")
    assert csv.text.splitlines()[0] == "id;maths;info;francais;prediction;raw;extrapolated"
    bad = reader.post("/predict", json=body, params={"fields": "everything"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "fields"]


def _snapshot(p: int, kind: str, seed: int) -> VersionSnapshot:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 20, (40, p))
    y = X @ rng.uniform(-1, 1, p) + rng.normal(0, 1.5, 40)
    result = fit(X, y, TrainingConfig(algorithm="closed_form"))
    theta = np.asarray(result.theta)
    design = result.interval if kind == "ols" else None
    return VersionSnapshot(
        model="m",
        version=1,
        features=tuple(f"f{j}" for j in range(p)),
        target="t",
        grade_min=0.0,
        grade_max=20.0,
        intercept=float(theta[0]),
        theta=theta,
        interval_design=design,
        residual_std=1.3 if kind == "sigma" else None,
        n_train=40 if kind == "sigma" else None,
        feature_min=X.min(axis=0) if kind != "none" else None,
        feature_max=X.max(axis=0) if kind != "none" else None,
        trained_at="2026-12-02T00:00:00Z",
        cohort_id=None,
    )


SNAPSHOTS = {
    (p, kind): _snapshot(p, kind, seed)
    for seed, (p, kind) in enumerate(
        (p, kind) for p in (1, 3, 7, 12) for kind in ("ols", "sigma", "none")
    )
}


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted(SNAPSHOTS)),
    grades=st.lists(st.floats(-5, 25, allow_nan=False), min_size=12, max_size=12),
    full=st.booleans(),
    skip=st.booleans(),
)
def test_one_pupil_without_numpy_gives_the_same_bytes(
    key: tuple[int, str], grades: list[float], full: bool, skip: bool
) -> None:
    snapshot = SNAPSHOTS[key]
    values = np.asarray([grades[: key[0]]])
    batch = Batch(ids=["n1"], values=values, skip=skip)
    expected = render_json(snapshot, batch, predict(snapshot, values, full=full), full=full)
    one = predict_one(snapshot, values[0].tolist(), full=full)
    assert render_one_json(snapshot, batch, one, full=full) == expected


def _one_dict_per_pupil(
    snapshot: VersionSnapshot, batch: Batch, result: Predictions, *, full: bool
) -> bytes:
    """The answer render_json writes in bulk, as a dict per pupil dumped by orjson."""
    answers: list[dict[str, Any]] = []
    for i in range(batch.values.shape[0]):
        pupil: dict[str, Any] = {"id": None if batch.ids is None else batch.ids[i]}
        error = batch.errors.get(i)
        if error is not None:
            pupil.update(prediction=None, raw=None)
            if full:
                pupil.update(interval=None, contributions=None)
            pupil.update(
                extrapolated=None, error={"code": error.code, "loc": error.loc, "msg": error.msg}
            )
            answers.append(pupil)
            continue
        pupil.update(prediction=float(result.prediction[i]), raw=float(result.raw[i]))
        if full:
            low, high = result.interval_low, result.interval_high
            pupil["interval"] = None if low is None or high is None else [low[i], high[i]]
            assert result.contributions is not None
            pupil["contributions"] = {
                "intercept": round(snapshot.intercept, 6),
                **dict(zip(snapshot.features, result.contributions[i].tolist(), strict=True)),
            }
        pupil["extrapolated"] = bool(result.extrapolated[i])
        if batch.skip:
            pupil["error"] = None
        answers.append(pupil)
    head = {
        "model": snapshot.model,
        "version": snapshot.version,
        "target": snapshot.target,
        "trained_at": snapshot.trained_at,
        "cohort_id": snapshot.cohort_id,
    }
    return orjson.dumps({**head, "predictions": answers}, option=orjson.OPT_SERIALIZE_NUMPY)


# Ids with what JSON escapes, and the commas and quotes the bulk writer splits at.
_IDS = st.one_of(
    st.sampled_from(["n1", "a,b", 'x"y', "\\", '",', "é ß 漢", "1e5", "null"]),
    st.text(st.characters(exclude_categories=("Cc", "Zl", "Zp", "Cs")), min_size=1, max_size=64)
    .map(str.strip)
    .filter(bool),
)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted(SNAPSHOTS)),
    data=st.data(),
    full=st.booleans(),
    skip=st.booleans(),
    with_ids=st.booleans(),
)
def test_the_bulk_answer_is_what_a_dict_per_pupil_gives(
    key: tuple[int, str], data: st.DataObject, full: bool, skip: bool, with_ids: bool
) -> None:
    snapshot = SNAPSHOTS[key]
    n = data.draw(st.integers(1, 30))
    grade = st.floats(-5, 25, allow_nan=False)
    values = np.asarray(
        data.draw(
            st.lists(st.lists(grade, min_size=key[0], max_size=key[0]), min_size=n, max_size=n)
        )
    )
    ids: Sequence[str] | None = None
    if with_ids:
        ids = data.draw(st.lists(_IDS, min_size=n, max_size=n))
        if data.draw(st.booleans()):  # as the C reader gives them (tables.typed_students)
            ids = PackedIds.join([ids])
    rows = data.draw(st.sets(st.integers(0, n - 1))) if skip else set()
    errors = {
        row: PupilError("out_of_range", ["students", row, "f0"], 'the "grade", é') for row in rows
    }
    batch = Batch(ids=ids, values=values, errors=errors, skip=skip)
    result = predict(snapshot, values, full=full)
    expected = _one_dict_per_pupil(snapshot, batch, result, full=full)
    assert render_json(snapshot, batch, result, full=full) == expected
