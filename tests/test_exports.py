"""Real school exports over real HTTP (issue 11): special marks, a/b marks, chosen columns,
group labels, the import report, pseudonymous ids, one pupil's erasure, and /predict with
on_error=skip; on SQLite and PostgreSQL."""

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from app.db.models import Role
from tests.conftest import LiveServer, Tenant, make_settings, make_tenant, start_server
from tests.test_cohorts import cohort_json
from tests.test_jobs import submit, wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPORT = (EXAMPLES / "pronote-export.csv").read_bytes()
CLASS_LIST = (EXAMPLES / "classe-2020-2021.csv").read_bytes()
EXPORT_PARAMS = {
    "name": "promo-2019-2020",
    "special_marks": "drop",
    "features": "Maths,Info,Français",
    "group_column": "Classe",
    "id_column": "INE",
}


def upload(client: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return client.post(
        "/cohorts", params=params, content=data, headers={"Content-Type": "text/csv"}
    )


def export_rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(EXPORT.decode()), delimiter=";"))


def test_a_pronote_export_goes_in_as_it_is(trainer: httpx.Client) -> None:
    response = upload(trainer, EXPORT, **EXPORT_PARAMS)
    assert response.status_code == 201, response.text
    cohort = response.json()
    assert cohort["features"] == ["maths", "info", "francais"]
    assert cohort["target"] == "concours"
    assert cohort["group_column"] == "Classe"
    assert cohort["import_report"] == {
        "received": 40,
        "kept": 37,
        "dropped": 3,
        "dropped_rows": [4, 9, 22],
        "special_marks": {
            "Maths": {"Abs": 1},
            "Français": {"Disp": 1},
            "Info": {"Abs*": 1},
            "Concours": {"N.Not": 1},
        },
        "rescaled": {"Maths": 1},
        "ignored_columns": ["Nom", "Prénom"],
    }
    assert cohort["n_students"] == 37
    # Nothing of the names comes back, and the answer is the one GET gives.
    for row in export_rows()[1:]:
        assert row[0] not in response.text
        assert row[1] not in response.text
    assert trainer.get(f"/cohorts/{cohort['id']}").json() == cohort

    students = trainer.get(f"/cohorts/{cohort['id']}/students", params={"limit": 1000}).json()
    by_id = {s["id"]: s for s in students["data"]}
    assert set(by_id) == {row[2] for i, row in enumerate(export_rows()[1:]) if i not in (3, 8, 21)}
    assert by_id["EX019000013"]["grades"]["info"] == 0.0  # Abs*: the low end
    assert by_id["EX019000018"]["grades"]["maths"] == 15.0  # 15/20 on 0-20
    assert {s["group"] for s in students["data"]} == {"3A", "3B"}
    # The rows keep their place in the upload (the fourth pupil was dropped).
    assert [s["row"] for s in students["data"][:4]] == [0, 1, 2, 4]
    stats = cohort["stats"]["maths"]
    kept = np.array([s["grades"]["maths"] for s in students["data"]])
    assert stats["mean"] == pytest.approx(kept.mean(), rel=1e-12)


def test_names_are_stored_nowhere(trainer: httpx.Client, live_server: LiveServer) -> None:
    assert upload(trainer, EXPORT, **{**EXPORT_PARAMS, "name": "sans-noms"}).status_code == 201
    names = {row[0] for row in export_rows()[1:]}
    with live_server.database.engine.connect() as connection:
        for table in sa.inspect(connection).get_table_names():
            rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
            text = repr(rows)
            assert not [name for name in names if name in text], table


def test_refuse_names_row_column_and_code_but_no_cell(trainer: httpx.Client) -> None:
    params = {k: v for k, v in EXPORT_PARAMS.items() if k != "special_marks"}
    response = upload(trainer, EXPORT, **params)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["errors"][0]["loc"] == ["body", "csv", 4, "Maths"]
    assert "'Abs'" in error["detail"]
    assert "FICTIF" not in response.text
    assert "EX019" not in response.text
    assert trainer.get("/cohorts").json()["count"] == 0


def test_without_features_a_name_column_is_refused_without_echoing_the_name(
    trainer: httpx.Client,
) -> None:
    response = upload(trainer, EXPORT, name="noms", id_column="INE", special_marks="drop")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "csv", 1, "Nom"]
    assert "FICTIF" not in response.text
    assert "not a number" in response.json()["detail"]


@pytest.mark.parametrize(
    ("cell", "grade"),
    [("15/20", 15.0), ("7,5/10", 15.0), ("12/40", 6.0), (" 3 / 4 ", 15.0), ("0/20", 0.0)],
)
def test_marks_on_another_scale_are_rescaled(
    trainer: httpx.Client, cell: str, grade: float
) -> None:
    data = f"id;Maths;Concours\r\na;{cell};12\r\nb;12,5;13\r\nc;12.5;14\r\n".encode()
    response = upload(trainer, data, name=f"scale-{uuid.uuid4().hex[:6]}")
    assert response.status_code == 201, response.text
    assert response.json()["import_report"]["rescaled"] == {"Maths": 1}
    students = trainer.get(f"/cohorts/{response.json()['id']}/students").json()["data"]
    assert [s["grades"]["maths"] for s in students] == [grade, 12.5, 12.5]


@pytest.mark.parametrize("cell", ["5/0", "25/20", "3/-4"])
def test_impossible_marks_on_another_scale_are_refused(trainer: httpx.Client, cell: str) -> None:
    data = f"id;Maths;Concours\r\na;12;12\r\nb;{cell};13\r\n".encode()
    response = upload(trainer, data, name="bad-scale", special_marks="drop")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "csv", 2, "Maths"]


def test_json_uploads_take_marks_as_codes_or_null(trainer: httpx.Client) -> None:
    body = cohort_json(n=6, name="json-marks", special_marks="drop", group_column="classe")
    for i, student in enumerate(body["students"]):
        student["classe"] = "3A" if i < 3 else "3B"
    body["students"][1]["maths"] = "Abs"
    body["students"][2]["info"] = None
    body["students"][3]["francais"] = "N.Rdu*"
    body["students"][4]["concours"] = "10/20"
    response = trainer.post("/cohorts", json=body)
    assert response.status_code == 201, response.text
    report = response.json()["import_report"]
    assert report["dropped_rows"] == [1, 2]
    assert report["special_marks"] == {
        "maths": {"Abs": 1},
        "info": {"empty": 1},
        "francais": {"N.Rdu*": 1},
    }
    assert report["rescaled"] == {"concours": 1}
    refused = trainer.post(
        "/cohorts", json={**body, "name": "json-refused", "special_marks": "refuse"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "students", 1, "maths"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"features": "Maths,Physique"}, ["query", "features"]),
        ({"features": "Maths,Classe", "group_column": "Classe"}, ["query", "features"]),
        ({"group_column": "Division"}, ["query", "group_column"]),
        ({"special_marks": "ignore"}, ["query", "special_marks"]),
        ({"speciel_marks": "drop"}, ["query", "speciel_marks"]),
    ],
)
def test_bad_export_options_are_named(
    trainer: httpx.Client, params: dict[str, str], loc: list[str]
) -> None:
    response = upload(trainer, EXPORT, **{**EXPORT_PARAMS, **params})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    assert trainer.get("/cohorts").json()["count"] == 0


def test_a_group_label_over_50_characters_is_refused(trainer: httpx.Client) -> None:
    data = ("id;Classe;Maths;Concours\r\na;3A;12;12\r\nb;" + "x" * 51 + ";12;13\r\n").encode()
    response = upload(trainer, data, name="long-label", group_column="Classe")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "csv", 2, "Classe"]
    assert "x" * 51 not in response.text


def test_one_pupil_is_erased_from_every_cohort(trainer: httpx.Client, reader: httpx.Client) -> None:
    first = upload(trainer, EXPORT, **EXPORT_PARAMS).json()
    second = upload(trainer, EXPORT, **{**EXPORT_PARAMS, "name": "promo-bis"}).json()
    job = submit(trainer, cohort_id=first["id"], algorithm="closed_form", model="efface")
    assert wait_for(trainer, job["id"])["status"] == "succeeded"
    assert reader.delete("/students/EX019000001").status_code == 403

    response = trainer.delete("/students/EX019000001")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["rows_erased"] == 2
    assert {c["id"] for c in answer["cohorts"]} == {first["id"], second["id"]}
    assert "EX019000001" not in response.text
    for cohort in (first, second):
        now = trainer.get(f"/cohorts/{cohort['id']}").json()
        assert now["n_students"] == 36
        students = trainer.get(f"/cohorts/{cohort['id']}/students", params={"limit": 100}).json()
        assert "EX019000001" not in {s["id"] for s in students["data"]}
        maths = [s["grades"]["maths"] for s in students["data"]]
        assert now["stats"]["maths"]["mean"] == pytest.approx(np.mean(maths), rel=1e-12)
    version = trainer.get("/models/efface/versions/1").json()
    assert version["erased_students"] == 1
    assert version["cohort_erased"] is False
    # Twice is a 404, as is a pupil of no cohort.
    assert trainer.delete("/students/EX019000001").status_code == 404
    assert trainer.delete("/students/nobody").status_code == 404


def test_another_organisation_cannot_erase_this_ones_pupils(
    trainer: httpx.Client, other_tenant: Tenant
) -> None:
    cohort = upload(trainer, EXPORT, **EXPORT_PARAMS).json()
    with other_tenant.client(Role.trainer) as stranger:
        assert stranger.delete("/students/EX019000002").status_code == 404
    assert trainer.get(f"/cohorts/{cohort['id']}").json()["n_students"] == 37


@pytest.fixture(scope="module")
def peppered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose operator set GRADECAST_ID_PEPPER, on a SQLite file of its own."""
    directory = tmp_path_factory.mktemp("pepper")
    url = f"sqlite:///{directory / 'gradecast.db'}"
    from app.db.migrations import upgrade_to_head

    upgrade_to_head(url)
    server = start_server(make_settings(url, directory, id_pepper="a-server-secret-0123456789"))
    yield server
    server.stop()
    server.database.engine.dispose()


def test_with_a_pepper_ids_are_stored_as_pseudonyms(peppered: LiveServer) -> None:
    tenant = make_tenant(peppered)
    with tenant.client(Role.trainer) as trainer:
        first = upload(trainer, EXPORT, **EXPORT_PARAMS).json()
        second = upload(trainer, EXPORT, **{**EXPORT_PARAMS, "name": "bis"}).json()
        ids = [
            [s["id"] for s in trainer.get(f"/cohorts/{c['id']}/students").json()["data"]]
            for c in (first, second)
        ]
        assert ids[0] == ids[1]  # the same INE, the same pseudonym
        assert all(i.startswith("p_") and len(i) == 26 for i in ids[0])
        assert not any(i.startswith("EX") for i in ids[0])
        # The school erases by the INE it knows.
        assert trainer.delete("/students/EX019000003").json()["rows_erased"] == 2
    other = make_tenant(peppered)
    with other.client(Role.trainer) as trainer:
        third = upload(trainer, EXPORT, **EXPORT_PARAMS).json()
        theirs = [s["id"] for s in trainer.get(f"/cohorts/{third['id']}/students").json()["data"]]
        assert not set(theirs) & set(ids[0])  # another organisation, other pseudonyms
    database = Path(peppered.settings.resolved_database_url.removeprefix("sqlite:///"))
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            assert b"EX019000" not in path.read_bytes(), path


def predict_csv(client: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return client.post(
        "/predict",
        params={"model": "classe", **params},
        content=data,
        headers={"Content-Type": "text/csv"},
    )


@pytest.fixture
def class_model(trainer: httpx.Client) -> None:
    body = {
        "features": ["maths", "info", "francais"],
        "target": "concours",
        "theta": [0, 0.33, 0.33, 0.33],
        "residual_std": 1.0,
        "n_train": 40,
        "activate": True,
    }
    assert trainer.post("/models/classe/versions", json=body).status_code == 201


def test_a_class_list_with_an_absent_pupil_gets_its_29_predictions(
    reader: httpx.Client, class_model: None
) -> None:
    params = {"id_column": "INE", "features": "Maths,Info,Français", "on_error": "skip"}
    response = predict_csv(reader, CLASS_LIST, **params)
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text), delimiter=";"))
    assert rows[0] == [
        "INE",
        "Maths",
        "Info",
        "Français",
        "prediction",
        "raw",
        "interval_low",
        "interval_high",
        "extrapolated",
        "status",
        "error",
    ]
    assert len(rows) == 31
    statuses = [row[9] for row in rows[1:]]
    assert statuses.count("ok") == 29
    absent = rows[7]
    assert absent[0] == "EX020000007"
    assert absent[1] == "Abs"
    assert absent[4] == ""
    assert absent[9] == "special_mark"
    assert "FICTIF" not in response.text  # Nom and Prénom are never echoed
    # Without skip, the absent pupil is a 422 naming it.
    refused = predict_csv(reader, CLASS_LIST, **{**params, "on_error": "refuse"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "csv", 7, "Maths"]


def test_json_predictions_skip_invalid_pupils_in_place(
    reader: httpx.Client, class_model: None, live_server: LiveServer
) -> None:
    students: list[dict[str, Any]] = [
        {"id": "a", "maths": 13, "info": 14, "francais": 11},
        {"id": "b", "maths": "Abs", "info": 14, "francais": 11},
        {"id": "c", "maths": 25, "info": 14, "francais": 11},
        {"id": "d", "maths": "x", "info": 14, "francais": 11},
        {"id": "e", "maths": "15/20", "info": 14, "francais": 11},
    ]
    body = {"model": "classe", "students": students, "on_error": "skip"}
    response = reader.post("/predict", json=body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["id"] for p in predictions] == ["a", "b", "c", "d", "e"]
    assert predictions[0]["prediction"] == 12.54
    assert predictions[0]["error"] is None
    assert predictions[4]["prediction"] == pytest.approx(0.33 * 40)
    assert [p["error"]["code"] for p in predictions[1:4]] == [
        "special_mark",
        "out_of_range",
        "not_a_grade",
    ]
    assert predictions[1]["error"]["loc"] == ["students", 1, "maths"]
    assert all(p["prediction"] is None for p in predictions[1:4])
    # The query string says skip as well, for a body that does not say.
    assert (
        reader.post(
            "/predict", params={"on_error": "skip"}, json={**body, "on_error": "refuse"}
        ).status_code
        == 422
    )
    assert (
        reader.post(
            "/predict", params={"on_error": "skip"}, json={"model": "classe", "students": students}
        ).status_code
        == 200
    )
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert 'gradecast_predictions_skipped_total{model="classe",version="1"}' in metrics


def test_zero_marks_count_as_the_low_end_when_asked(
    reader: httpx.Client, class_model: None
) -> None:
    students = [{"id": "a", "maths": "Abs*", "info": 14, "francais": 11}]
    refused = reader.post("/predict", json={"model": "classe", "students": students})
    assert refused.status_code == 422
    answered = reader.post(
        "/predict", json={"model": "classe", "students": students, "special_marks": "drop"}
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["predictions"][0]["raw"] == pytest.approx(0.33 * 25)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/cohorts"), ("GET", "/models"), ("GET", "/jobs"), ("GET", "/whoami")],
)
def test_an_unknown_query_parameter_is_named(admin: httpx.Client, method: str, path: str) -> None:
    response = admin.request(method, path, params={"limt": "5"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["query", "limt"]
