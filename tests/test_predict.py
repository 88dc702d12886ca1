"""POST /predict through real HTTP: the course's example, JSON and French CSV, strict
inputs, version pinning and the cache seeing an activation made by another process."""

import csv
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db.models import CohortErasure, Model, Role
from app.db.session import write_session
from app.engine import student_t_975
from app.services import models as model_service
from tests.conftest import LiveServer, Tenant
from tests.processes import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["maths", "info", "francais"]
COURSE_THETA = [0, 0.33, 0.33, 0.33]
NEW_PUPIL = {"id": "n1", "maths": 13, "info": 14, "francais": 11}


def register(client: httpx.Client, name: str = "concours", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "features": FEATURES,
        "target": "concours",
        "theta": COURSE_THETA,
        "grade_range": [0, 20],
        "activate": True,
    }
    body.update(overrides)
    response = client.post(f"/models/{name}/versions", json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def register_trained(
    server: LiveServer, tenant: Tenant, *, feature_min: list[float], feature_max: list[float]
) -> None:
    """A version as a training job stores it: with σ, n_train and the cohort's ranges."""
    with write_session(server.database) as session:
        version = model_service.create_version(
            session,
            tenant.organisation_id,
            "concours",
            model_service.VersionSpec(
                features=FEATURES,
                feature_labels=["Maths", "Info", "Français"],
                target="concours",
                grade_range=(0, 20),
                theta=[1.0, 0.3, 0.3, 0.3],
                residual_std=1.5,
                n_train=10,
                feature_min=feature_min,
                feature_max=feature_max,
                metrics={"train_mse": 2.0},
                hyperparameters={"algorithm": "closed_form"},
                source="job",
                cohort_name="promo-2019-2020",
            ),
            created_by=None,
        )
        model = session.get_one(Model, version.model_id)
        model_service.set_active(session, model, version.version, key_id=None, reason="test")


def predict(client: httpx.Client, students: list[Any], **fields: Any) -> httpx.Response:
    return client.post("/predict", json={"model": "concours", "students": students, **fields})


def test_the_course_example_gives_12_54(reader: httpx.Client, trainer: httpx.Client) -> None:
    registered = register(trainer)
    response = predict(reader, [NEW_PUPIL])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model"] == "concours"
    assert body["version"] == 1
    assert body["target"] == "concours"
    assert body["trained_at"] == registered["created_at"].replace("+00:00", "Z")
    assert body["cohort_id"] is None
    (pupil,) = body["predictions"]
    assert pupil["id"] == "n1"
    assert pupil["prediction"] == 12.54
    assert pupil["raw"] == 12.54
    assert pupil["interval"] is None
    assert pupil["extrapolated"] is False
    assert pupil["contributions"] == {
        "intercept": 0,
        "maths": 4.29,
        "info": 4.62,
        "francais": 3.63,
    }
    assert sum(pupil["contributions"].values()) == pytest.approx(pupil["raw"], abs=1e-5)


def test_ids_are_optional_and_order_is_kept(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer)
    students = [{"maths": m, "info": 10, "francais": 10} for m in (0, 20, 10.5)]
    body = predict(reader, students).json()
    assert [p["id"] for p in body["predictions"]] == [None, None, None]
    assert [p["raw"] for p in body["predictions"]] == [6.6, 13.2, 10.065]


def test_predictions_are_clipped_into_the_grade_range(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer, theta=[5, 1, 1, 1], residual_std=1.0)
    register(trainer, name="low", theta=[-40, 1, 1, 1])
    high = predict(reader, [NEW_PUPIL]).json()["predictions"][0]
    assert high["raw"] == 43
    assert high["prediction"] == 20
    assert high["interval"] == [20, 20]
    assert sum(high["contributions"].values()) == pytest.approx(43)
    low = reader.post("/predict", json={"model": "low", "students": [NEW_PUPIL]}).json()
    assert low["predictions"][0]["raw"] == -2
    assert low["predictions"][0]["prediction"] == 0


def test_interval_uses_sigma_with_1_96_when_n_train_is_unknown(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer, residual_std=1.0)
    pupil = predict(reader, [NEW_PUPIL]).json()["predictions"][0]
    low, high = pupil["interval"]
    assert low == pytest.approx(12.54 - 1.959964, abs=1e-5)
    assert high == pytest.approx(12.54 + 1.959964, abs=1e-5)


def test_interval_uses_student_t_with_n_minus_p_minus_1_dof(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer, residual_std=1.0, n_train=10)  # 10 − 3 − 1 = 6 dof: t = 2.446912
    low, high = predict(reader, [NEW_PUPIL]).json()["predictions"][0]["interval"]
    assert (high - low) / 2 == pytest.approx(2.446912, abs=1e-5)
    assert (high + low) / 2 == pytest.approx(12.54, abs=1e-5)


@pytest.mark.parametrize(
    ("dof", "expected"),
    [
        (1, 12.706205),
        (2, 4.302653),
        (5, 2.570582),
        (6, 2.446912),
        (30, 2.042272),
        (200, 1.971896),
        (201, 1.971837),
        (1000, 1.962339),
        (10**6, 1.959966),
    ],
)
def test_student_t_quantile(dof: int, expected: float) -> None:
    assert student_t_975(dof) == pytest.approx(expected, abs=2e-6)


def test_extrapolation_is_answered_and_flagged(
    live_server: LiveServer, tenant: Tenant, reader: httpx.Client
) -> None:
    register_trained(live_server, tenant, feature_min=[5, 5, 5], feature_max=[15, 15, 15])
    students = [
        {"id": "inside", "maths": 13, "info": 14, "francais": 11},
        {"id": "edge", "maths": 5, "info": 15, "francais": 15},
        {"id": "above", "maths": 13, "info": 16, "francais": 11},
        {"id": "below", "maths": 4.5, "info": 14, "francais": 11},
    ]
    body = predict(reader, students).json()
    assert [p["extrapolated"] for p in body["predictions"]] == [False, False, True, True]
    inside = body["predictions"][0]
    assert inside["raw"] == pytest.approx(1 + 0.3 * 38)
    t_6 = 2.446912
    assert inside["interval"] == pytest.approx(
        [inside["raw"] - t_6 * 1.5, inside["raw"] + t_6 * 1.5], abs=1e-5
    )


def test_version_pinning_and_unknown_version(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer)
    register(trainer, theta=[2, 0.33, 0.33, 0.33])
    assert predict(reader, [NEW_PUPIL]).json()["version"] == 2
    assert predict(reader, [NEW_PUPIL]).json()["predictions"][0]["raw"] == 14.54
    pinned = predict(reader, [NEW_PUPIL], version=1).json()
    assert pinned["version"] == 1
    assert pinned["predictions"][0]["raw"] == 12.54
    missing = predict(reader, [NEW_PUPIL], version=3)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["loc"] == ["body", "version"]


def test_each_version_asks_for_its_own_features(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    register(trainer, features=["maths", "info"], theta=[1, 0.5, 0.5])
    new = predict(reader, [{"maths": 13, "info": 14}])
    assert new.json()["predictions"][0]["raw"] == 14.5
    old = predict(reader, [{"maths": 13, "info": 14}], version=1)
    assert old.status_code == 422
    assert old.json()["errors"][0]["loc"] == ["body", "students", 0, "francais"]


def test_no_active_version_is_409(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer, activate=False)
    response = predict(reader, [NEW_PUPIL])
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert predict(reader, [NEW_PUPIL], version=1).status_code == 200


def test_unknown_and_foreign_models_are_404(
    reader: httpx.Client, trainer: httpx.Client, other_tenant: Tenant
) -> None:
    register(trainer)
    unknown = reader.post("/predict", json={"model": "nope", "students": [NEW_PUPIL]})
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["loc"] == ["body", "model"]
    with other_tenant.client(Role.admin) as other:
        assert predict(other, [NEW_PUPIL]).status_code == 404
        assert predict(other, [NEW_PUPIL], version=1).status_code == 404


def test_a_key_is_required(anonymous: httpx.Client) -> None:
    assert predict(anonymous, [NEW_PUPIL]).status_code == 401


def _students(n: int = 3) -> list[dict[str, Any]]:
    return [
        {"id": f"secret-{i}", "maths": 17.125 + i, "info": 10, "francais": 10} for i in range(n)
    ]


@pytest.mark.parametrize(
    ("row", "change", "loc"),
    [
        (1, {"info": None}, ["body", "students", 1, "info"]),
        (1, {"info": "12,5"}, ["body", "students", 1, "info"]),
        (1, {"info": "12.5"}, ["body", "students", 1, "info"]),
        (2, {"info": True}, ["body", "students", 2, "info"]),
        (1, {"physique": 12}, ["body", "students", 1, "physique"]),
        (2, {"maths": 20.5}, ["body", "students", 2, "maths"]),
        (0, {"francais": -1}, ["body", "students", 0, "francais"]),
        (1, {"id": ""}, ["body", "students", 1, "id"]),
    ],
)
def test_bad_pupils_are_422_naming_pupil_and_feature(
    reader: httpx.Client,
    trainer: httpx.Client,
    row: int,
    change: dict[str, Any],
    loc: list[Any],
) -> None:
    register(trainer)
    students = _students()
    students[row].update(change)
    students[row] = {k: v for k, v in students[row].items() if v is not None}
    response = predict(reader, students)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    # Other pupils' grades and ids are not echoed.
    for other in {0, 1, 2} - {row}:
        assert f"secret-{other}" not in response.text
        assert str(17.125 + other) not in response.text


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_grades_are_422(
    reader: httpx.Client, trainer: httpx.Client, literal: bytes
) -> None:
    register(trainer)
    body = b'{"model": "concours", "students": [{"maths": ' + literal
    body += b', "info": 1, "francais": 1}]}'
    response = reader.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"model": "concours", "students": []}, ["body", "students"]),
        ({"model": "concours"}, ["body", "students"]),
        ({"model": "concours", "students": {"maths": 1}}, ["body", "students"]),
        ({"model": "concours", "students": [NEW_PUPIL], "extra": 1}, ["body", "extra"]),
        ({"model": "concours", "students": [NEW_PUPIL], "version": "1"}, ["body", "version"]),
        ({"model": "concours", "students": [NEW_PUPIL], "version": 0}, ["body", "version"]),
        ({"students": [NEW_PUPIL]}, ["body", "model"]),
        ({"model": "con cours", "students": [NEW_PUPIL]}, ["body", "model"]),
        ({"model": "concours", "students": [NEW_PUPIL, 3]}, ["body", "students", 1]),
    ],
)
def test_bad_envelopes_are_422(
    reader: httpx.Client, trainer: httpx.Client, body: dict[str, Any], loc: list[Any]
) -> None:
    register(trainer)
    response = reader.post("/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc


def test_not_json_is_422_and_other_media_415(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer)
    broken = reader.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    xml = reader.post("/predict", content=b"<a/>", headers={"Content-Type": "application/xml"})
    assert xml.status_code == 415
    assert xml.json()["errors"][0]["loc"] == ["header", "content-type"]


def test_more_pupils_than_the_limit_is_413(
    live_server: LiveServer, reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    limit = live_server.settings.max_predict_rows
    pupil = {"maths": 1, "info": 1, "francais": 1}
    assert predict(reader, [pupil] * limit).status_code == 200
    response = predict(reader, [pupil] * (limit + 1))
    assert response.status_code == 413
    assert response.json()["errors"][0]["loc"] == ["body", "students"]


def test_large_batch_is_one_answer_per_pupil(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer)
    students = [{"maths": i % 21, "info": 10, "francais": 10} for i in range(5000)]
    body = predict(reader, students).json()
    raws = [p["raw"] for p in body["predictions"]]
    assert raws == [round(0.33 * (i % 21) + 6.6, 6) for i in range(5000)]


FRENCH_CSV = "id;Maths;Info;Français\r\nn1;13;14;11\r\nn2;12,5;9;15\r\n"


def post_csv(client: httpx.Client, data: str | bytes, **params: Any) -> httpx.Response:
    return client.post(
        "/predict",
        params={"model": "concours", **params},
        content=data.encode() if isinstance(data, str) else data,
        headers={"Content-Type": "text/csv"},
    )


def read_csv(text: str, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def test_french_csv_in_french_csv_out(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer, residual_std=1.0)
    response = post_csv(reader, FRENCH_CSV)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = read_csv(response.text, ";")
    assert rows[0] == [
        "id",
        "Maths",
        "Info",
        "Français",
        "prediction",
        "raw",
        "interval_low",
        "interval_high",
        "extrapolated",
    ]
    assert [r[0] for r in rows[1:]] == ["n1", "n2"]
    # The marks come back as they were sent, not reformatted (13 stays 13, not 13,0).
    assert [r[1:4] for r in rows[1:]] == [["13", "14", "11"], ["12,5", "9", "15"]]
    assert [r[8] for r in rows[1:]] == ["false", "false"]
    assert float(rows[1][4].replace(",", ".")) == 12.54
    assert float(rows[2][5].replace(",", ".")) == pytest.approx(0.33 * 36.5)
    assert "," in rows[2][1]  # 12,5 comes back with a decimal comma
    assert float(rows[1][6].replace(",", ".")) == pytest.approx(12.54 - 1.959964, abs=1e-5)


def test_comma_csv_in_comma_csv_out_with_columns_in_any_order(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    response = post_csv(reader, "francais,maths,info\n11,13,14\n15,12.5,9\n")
    assert response.status_code == 200, response.text
    rows = read_csv(response.text, ",")
    assert rows[0] == [
        "francais",
        "maths",
        "info",
        "prediction",
        "raw",
        "interval_low",
        "interval_high",
        "extrapolated",
    ]
    assert float(rows[1][3]) == 12.54
    assert rows[1][5:7] == ["", ""]  # no σ: no interval


def test_csv_pins_a_version_from_the_query(reader: httpx.Client, trainer: httpx.Client) -> None:
    register(trainer)
    register(trainer, theta=[2, 0.33, 0.33, 0.33])
    rows = read_csv(post_csv(reader, FRENCH_CSV, version=1).text, ";")
    assert float(rows[1][4].replace(",", ".")) == 12.54
    assert post_csv(reader, FRENCH_CSV, version=9).json()["errors"][0]["loc"] == [
        "query",
        "version",
    ]


@pytest.mark.parametrize(
    ("data", "params", "loc"),
    [
        ("id;Maths;Info\r\nn1;13;14\r\n", {}, ["body", "csv", 0, "francais"]),
        ("Maths;Info;Français;Physique\r\n1;2;3;4\r\n", {}, ["body", "csv", 0, "Physique"]),
        (
            "id;Maths;Info;Français\r\nn1;13;14;11\r\nn2;21;9;15\r\n",
            {},
            ["body", "csv", 2, "Maths"],
        ),
        ("id;Maths;Info;Français\r\nn1;13;abc;11\r\n", {}, ["body", "csv", 1, "Info"]),
        (FRENCH_CSV, {"model": None}, ["query", "model"]),
    ],
)
def test_bad_csv_is_422_naming_row_and_column(
    reader: httpx.Client,
    trainer: httpx.Client,
    data: str,
    params: dict[str, Any],
    loc: list[Any],
) -> None:
    register(trainer)
    query = {"model": "concours", **params}
    response = reader.post(
        "/predict",
        params={k: v for k, v in query.items() if v is not None},
        content=data.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc


def test_csv_with_more_rows_than_the_limit_is_413(
    live_server: LiveServer, reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    limit = live_server.settings.max_predict_rows
    data = "maths,info,francais\n" + "1,2,3\n" * (limit + 1)
    assert post_csv(reader, data).status_code == 413


@pytest.fixture
def second_server(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """Another uvicorn, two worker processes, on the same database as the live server."""
    server = ServerProcess(
        live_server.settings.resolved_database_url,
        tmp_path,
        workers=2,
        env={
            "GRADECAST_WORKERS": "0",
            "GRADECAST_MODEL_CACHE_SECONDS": "0.5",
            "GRADECAST_AUTH_CACHE_SECONDS": "60",
        },
    ).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_an_activation_reaches_every_worker_process_within_a_second(
    tenant: Tenant, trainer: httpx.Client, second_server: str
) -> None:
    register(trainer)
    register(trainer, theta=[2, 0.33, 0.33, 0.33], activate=False)
    headers = {"Authorization": f"Bearer {tenant.keys[Role.reader]}"}
    body = {"model": "concours", "students": [NEW_PUPIL]}
    with httpx.Client(base_url=second_server, headers=headers, timeout=10) as other:

        def version() -> int:
            # A fresh connection each time, so that both worker processes answer.
            response = other.post("/predict", json=body, headers={"Connection": "close"})
            assert response.status_code == 200, response.text
            answer = response.json()
            # One response, one version: its Θ matches the version it names.
            assert answer["predictions"][0]["raw"] == {1: 12.54, 2: 14.54}[answer["version"]]
            return int(answer["version"])

        for _ in range(20):  # both workers cache version 1 as the active one
            assert version() == 1

        assert trainer.put("/models/concours/active", json={"version": 2}).status_code == 200
        activated = time.monotonic()
        seen: list[tuple[float, int]] = []
        while time.monotonic() - activated < 2.5:
            seen.append((time.monotonic() - activated, version()))
    last_old = max((t for t, v in seen if v == 1), default=0.0)
    assert any(v == 2 for _, v in seen)
    assert last_old < 1.5, f"version 1 still answered {last_old:.2f} s after the activation"
    assert all(v == 2 for t, v in seen if t > last_old)


def test_an_erased_cohort_leaves_every_worker_process_within_a_second(
    tenant: Tenant, trainer: httpx.Client, second_server: str, live_server: LiveServer
) -> None:
    from tests.test_jobs import submit, upload_example, wait_for

    cohort = upload_example(trainer)
    job = submit(trainer, cohort_id=cohort["id"], algorithm="closed_form")
    assert wait_for(trainer, job["id"])["status"] == "succeeded"
    headers = {"Authorization": f"Bearer {tenant.keys[Role.reader]}"}
    body = {"model": "concours", "students": [NEW_PUPIL]}
    with httpx.Client(base_url=second_server, headers=headers, timeout=10) as other:

        def provenance() -> str | None:
            response = other.post("/predict", json=body, headers={"Connection": "close"})
            assert response.status_code == 200, response.text
            cohort_id: str | None = response.json()["cohort_id"]
            return cohort_id

        for _ in range(10):  # both worker processes cache the version
            assert provenance() == cohort["id"]
        assert trainer.delete(f"/cohorts/{cohort['id']}").status_code == 204
        erased = time.monotonic()
        seen: list[tuple[float, str | None]] = []
        while time.monotonic() - erased < 2.5:
            seen.append((time.monotonic() - erased, provenance()))
    last_named = max((t for t, c in seen if c is not None), default=0.0)
    assert last_named < 1.5, f"the erased cohort was named {last_named:.2f} s after"
    assert all(c is None for t, c in seen if t > last_named)
    # The erasure is on record, without any pupil data.
    with live_server.database.reads() as session:
        record = session.scalars(
            select(CohortErasure).where(CohortErasure.cohort_id == uuid.UUID(cohort["id"]))
        ).one()
    row = (record.cohort_name, record.n_students, record.key_id)
    assert tuple(row[:2]) == ("exemple", 200)
    assert row[2] is not None


def test_an_activation_is_seen_by_the_same_process_at_once(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    register(trainer, theta=[2, 0.33, 0.33, 0.33], activate=False)
    assert predict(reader, [NEW_PUPIL]).json()["version"] == 1
    trainer.put("/models/concours/active", json={"version": 2})
    assert predict(reader, [NEW_PUPIL]).json()["version"] == 2
    trainer.put("/models/concours/active", json={"version": 1})
    assert predict(reader, [NEW_PUPIL]).json()["version"] == 1


def test_openapi_documents_predict(anonymous: httpx.Client) -> None:
    operation = anonymous.get("/openapi.json").json()["paths"]["/predict"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    forms = content["application/json"]["schema"]["oneOf"]
    assert [set(form["required"]) for form in forms] == [
        {"model", "students"},
        {"model", "columns"},
    ]
    assert {"200", "401", "403", "404", "409", "413", "415", "422"} <= set(operation["responses"])
    assert "text/csv" in operation["responses"]["200"]["content"]


def test_ids_from_the_same_json_are_echoed_as_given(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    students = [{**NEW_PUPIL, "id": str(uuid.uuid4())} for _ in range(3)]
    body = predict(reader, students).json()
    assert [p["id"] for p in body["predictions"]] == [s["id"] for s in students]
