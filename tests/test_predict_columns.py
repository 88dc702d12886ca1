"""/predict's columnar body, fields=prediction, and the one-pupil answer without numpy."""

from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import TrainingConfig, fit
from app.services.answers import render_json, render_one_json
from app.services.batches import Batch
from app.services.predict import VersionSnapshot, predict, predict_one
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
