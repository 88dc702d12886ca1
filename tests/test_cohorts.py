"""Cohort upload through real HTTP: JSON, CSV dialects, multipart; every bad input a 4xx
naming the row and column, with nothing stored."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db.models import Role
from tests.conftest import Tenant

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cohort_json(n: int = 4, **overrides: Any) -> dict[str, Any]:
    rows = [(12, 15, 9, 14), (5, 9, 12, 7), (13, 12, 13, 12), (10, 12, 15, 11)]
    students = [
        {"id": f"e{i + 1}", "maths": m, "info": inf, "francais": f, "concours": c}
        for i, (m, inf, f, c) in enumerate((rows * (n // 4 + 1))[:n])
    ]
    document: dict[str, Any] = {
        "name": "promo-2019-2020",
        "features": ["maths", "info", "francais"],
        "target": "concours",
        "grade_range": [0, 20],
        "students": students,
    }
    document.update(overrides)
    return document


def count_cohorts(client: httpx.Client) -> int:
    count: int = client.get("/cohorts").json()["count"]
    return count


def test_upload_json_and_read_back(trainer: httpx.Client) -> None:
    response = trainer.post("/cohorts", json=cohort_json())
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"/cohorts/{body['id']}"
    assert body["n_students"] == 4
    assert body["features"] == ["maths", "info", "francais"]
    assert body["target"] == "concours"
    assert body["grade_range"] == [0, 20]
    assert body["stats"]["maths"] == {
        "mean": 10.0,
        "std": pytest.approx(3.0822, abs=1e-4),
        "min": 5.0,
        "max": 13.0,
    }

    assert trainer.get(f"/cohorts/{body['id']}").json() == body
    listed = trainer.get("/cohorts").json()
    assert listed["count"] == 1
    assert listed["data"][0]["id"] == body["id"]

    students = trainer.get(f"/cohorts/{body['id']}/students", params={"limit": 2, "offset": 1})
    assert students.json() == {
        "data": [
            {
                "row": 1,
                "id": "e2",
                "group": None,
                "grades": {"maths": 5, "info": 9, "francais": 12, "concours": 7},
            },
            {
                "row": 2,
                "id": "e3",
                "group": None,
                "grades": {"maths": 13, "info": 12, "francais": 13, "concours": 12},
            },
        ],
        "count": 4,
    }


def test_upload_example_csv_french_dialect(trainer: httpx.Client) -> None:
    data = (EXAMPLES / "cohort.csv").read_bytes()
    response = trainer.post(
        "/cohorts", params={"name": "exemple"}, content=data, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["features"] == ["maths", "info", "francais"]
    assert body["feature_labels"] == ["Maths", "Info", "Français"]
    assert body["target"] == "concours"
    assert body["target_label"] == "Concours"
    assert body["n_students"] == 200
    assert body["has_ids"]
    first = trainer.get(f"/cohorts/{body['id']}/students", params={"limit": 5}).json()["data"]
    assert first[0] == {
        "row": 0,
        "id": "e1",
        "group": None,
        "grades": {"maths": 12, "info": 15, "francais": 9, "concours": 14},
    }
    assert first[4]["grades"]["info"] == 12.5


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (
            "\ufeffINE;Maths;Info;Français;Concours\r\nA1;12,5;15;9;14\r\nA2;5;9;12;7\r\n",
            "text/csv",
        ),
        (
            "INE\tMaths\tInfo\tFrançais\tConcours\nA1\t12,5\t15\t9\t14\nA2\t5\t9\t12\t7\n",
            "text/csv",
        ),
        ('INE,Maths,Info,Français,Concours\nA1,"12,5",15,9,14\nA2,5,9,12,7\n', "text/csv"),
        (
            "INE,Maths,Info,Français,Concours\rA1,12.5,15,9,14\rA2,5,9,12,7\r",
            "text/csv; charset=utf-8",
        ),
    ],
    ids=["semicolon-bom-crlf", "tab", "comma-quoted-decimal-comma", "cr-only"],
)
def test_csv_dialects(trainer: httpx.Client, payload: str, content_type: str) -> None:
    response = trainer.post(
        "/cohorts",
        params={"name": "dialect", "id_column": "INE"},
        content=payload.encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["features"] == ["maths", "info", "francais"]
    assert body["stats"]["maths"]["max"] == 12.5
    rows = trainer.get(f"/cohorts/{body['id']}/students").json()["data"]
    assert [r["id"] for r in rows] == ["A1", "A2"]


def test_csv_windows_1252_with_charset(trainer: httpx.Client) -> None:
    payload = "id;Maths;Français;Concours\r\n1;12;9;14\r\n2;5;12;7\r\n".encode("cp1252")
    response = trainer.post(
        "/cohorts",
        params={"name": "excel"},
        content=payload,
        headers={"Content-Type": "text/csv; charset=windows-1252"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["feature_labels"] == ["Maths", "Français"]


def test_csv_target_and_range_parameters(trainer: httpx.Client) -> None:
    payload = b"id,concours,maths,info\n1,70,60,80\n2,40,50,30\n"
    response = trainer.post(
        "/cohorts",
        params={"name": "percent", "target": "concours", "grade_range": "0,100"},
        content=payload,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["features"] == ["maths", "info"]
    assert body["target"] == "concours"
    assert body["grade_range"] == [0, 100]
    rows = trainer.get(f"/cohorts/{body['id']}/students").json()["data"]
    assert rows[0]["grades"] == {"maths": 60, "info": 80, "concours": 70}


def test_multipart_upload(trainer: httpx.Client) -> None:
    data = (EXAMPLES / "cohort.csv").read_bytes()
    response = trainer.post(
        "/cohorts", params={"name": "multipart"}, files={"file": ("cohort.csv", data, "text/csv")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["n_students"] == 200


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_csv_sent_in_small_pieces_is_stored_whole(trainer: httpx.Client, declared: bool) -> None:
    """The body is read into one buffer of its declared length as the pieces come (or
    joined, when chunked): every pupil arrives, in order."""
    rows = [f"E{i:05d};{i % 20},5;{(i * 7) % 20};1{i % 9}" for i in range(3000)]
    body = ("id;Maths;Info;Concours\r\n" + "\r\n".join(rows) + "\r\n").encode()

    def pieces() -> Any:
        for at in range(0, len(body), 997):
            yield body[at : at + 997]

    headers = {"Content-Type": "text/csv"}
    if declared:
        headers["Content-Length"] = str(len(body))
    answer = trainer.post(
        "/cohorts", params={"name": f"pieces-{declared}"}, content=pieces(), headers=headers
    )
    assert answer.status_code == 201, answer.text
    cohort = answer.json()
    assert cohort["n_students"] == 3000
    page = trainer.get(
        f"/cohorts/{cohort['id']}/students", params={"limit": 3, "offset": 2997}
    ).json()["data"]
    assert [s["id"] for s in page] == ["E02997", "E02998", "E02999"]
    assert [s["grades"]["maths"] for s in page] == [17.5, 18.5, 19.5]


def test_duplicate_name_is_409(trainer: httpx.Client) -> None:
    assert trainer.post("/cohorts", json=cohort_json()).status_code == 201
    response = trainer.post("/cohorts", json=cohort_json())
    assert response.status_code == 409
    assert response.json()["errors"][0]["loc"] == ["body", "name"]
    assert count_cohorts(trainer) == 1


def _student(i: int, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": f"e{i}", "maths": 10, "info": 10, "francais": 10, "concours": 10}
    base.update(values)
    return base


def _bad_students(*extra: dict[str, Any]) -> dict[str, Any]:
    return cohort_json(students=[_student(1), _student(2), *extra])


JSON_CASES: list[tuple[str, Any, int, list[Any]]] = [
    ("string grade", _bad_students(_student(3, maths="12")), 422, ["body", "students", 2, "maths"]),
    (
        "decimal comma",
        _bad_students(_student(3, info="12,5")),
        422,
        ["body", "students", 2, "info"],
    ),
    ("bool grade", _bad_students(_student(3, maths=True)), 422, ["body", "students", 2, "maths"]),
    (
        "null grade",
        _bad_students(_student(3, francais=None)),
        422,
        ["body", "students", 2, "francais"],
    ),
    ("above range", _bad_students(_student(3, maths=21)), 422, ["body", "students", 2, "maths"]),
    ("negative", _bad_students(_student(3, concours=-1)), 422, ["body", "students", 2, "concours"]),
    ("huge", _bad_students(_student(3, maths=1e308)), 422, ["body", "students", 2, "maths"]),
    (
        "missing column",
        _bad_students({"id": "e3", "maths": 1, "info": 1, "concours": 1}),
        422,
        ["body", "students", 2, "francais"],
    ),
    (
        "extra column",
        _bad_students(_student(3, physique=12)),
        422,
        ["body", "students", 2, "physique"],
    ),
    ("duplicate ids", _bad_students(_student(1)), 422, ["body", "students", 2, "id"]),
    ("one student", cohort_json(students=[_student(1)]), 422, ["body", "students"]),
    ("no students", cohort_json(students=[]), 422, ["body", "students"]),
    ("target is feature", cohort_json(target="maths"), 422, ["body", "target"]),
    ("duplicate feature", cohort_json(features=["maths", "maths"]), 422, ["body", "features", 1]),
    ("unknown field", cohort_json(colour="blue"), 422, ["body", "colour"]),
    ("bad range", cohort_json(grade_range=[20, 0]), 422, ["body", "grade_range"]),
    (
        "accented feature",
        cohort_json(features=["maths", "info", "Français"]),
        422,
        ["body", "features", 2],
    ),
    ("students not list", cohort_json(students={"a": 1}), 422, ["body", "students"]),
    ("student not object", _bad_students([1, 2]), 422, ["body", "students", 2]),  # type: ignore[arg-type]
    ("empty name", cohort_json(name=""), 422, ["body", "name"]),
    ("huge name", cohort_json(name="x" * 10_000), 422, ["body", "name"]),
    (
        "mixed ids",
        _bad_students({"maths": 1, "info": 1, "francais": 1, "concours": 1}),
        422,
        ["body", "students", 2, "id"],
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "status", "loc"), JSON_CASES, ids=[c[0] for c in JSON_CASES]
)
def test_bad_json_cohorts(
    trainer: httpx.Client, case: str, payload: Any, status: int, loc: list[Any]
) -> None:
    response = trainer.post("/cohorts", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"][0]["loc"] == loc, body
    assert body["detail"]
    assert count_cohorts(trainer) == 0


def test_nan_and_infinity_are_refused(trainer: httpx.Client) -> None:
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = (
            '{"name":"n","features":["maths"],"target":"concours","students":['
            '{"maths":1,"concours":2},{"maths":' + token + ',"concours":3}]}'
        )
        response = trainer.post(
            "/cohorts", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (token, response.text)
    assert count_cohorts(trainer) == 0


CSV_CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("non-number", b"id;maths;concours\n1;12;14\n2;abc;7\n", {}, 422, "row 2"),
    ("nan", b"id;maths;concours\n1;12;14\n2;nan;7\n", {}, 422, "row 2"),
    ("inf", b"id;maths;concours\n1;12;14\n2;inf;7\n", {}, 422, "row 2"),
    ("empty cell", b"id;maths;concours\n1;12;14\n2;;7\n", {}, 422, "row 2"),
    ("out of range", b"id;maths;concours\n1;12;14\n2;25;7\n", {}, 422, "row 2"),
    ("ragged row", b"id;maths;concours\n1;12;14\n2;7\n", {}, 422, "row 2"),
    ("duplicate ids", b"id;maths;concours\n1;12;14\n1;5;7\n", {}, 422, "rows 1 and 2"),
    ("duplicate headers", b"id;maths;Maths;concours\n1;12;12;14\n2;5;5;7\n", {}, 422, "maths"),
    ("only header", b"id;maths;concours\n", {}, 422, "at least 2"),
    ("one row", b"id;maths;concours\n1;12;14\n", {}, 422, "at least 2"),
    ("invalid utf-8", b"id;maths;concours\n1;12;14\n\xff\xfe;5;7\n", {}, 422, "UTF-8"),
    (
        "unknown target",
        b"id;maths;concours\n1;12;14\n2;5;7\n",
        {"target": "physique"},
        422,
        "physique",
    ),
    (
        "bad range",
        b"id;maths;concours\n1;12;14\n2;5;7\n",
        {"grade_range": "a,b"},
        422,
        "grade_range",
    ),
    ("no name", b"id;maths;concours\n1;12;14\n2;5;7\n", {"name": ""}, 422, "name"),
]


@pytest.mark.parametrize(
    ("case", "payload", "params", "status", "needle"), CSV_CASES, ids=[c[0] for c in CSV_CASES]
)
def test_bad_csv_cohorts(
    trainer: httpx.Client,
    case: str,
    payload: bytes,
    params: dict[str, str],
    status: int,
    needle: str,
) -> None:
    query = {"name": "bad", **params}
    if not query["name"]:
        del query["name"]
    response = trainer.post(
        "/cohorts", params=query, content=payload, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert needle.lower() in body["detail"].lower(), body
    assert body["errors"], body
    assert count_cohorts(trainer) == 0


def test_unsupported_content_type_is_415(trainer: httpx.Client) -> None:
    response = trainer.post(
        "/cohorts", content=b"<xml/>", headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 415
    assert count_cohorts(trainer) == 0


def test_malformed_json_is_422(trainer: httpx.Client) -> None:
    response = trainer.post(
        "/cohorts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body"]


def test_row_and_body_limits(database_url: str, tmp_path: Path) -> None:
    from tests.conftest import make_settings, make_tenant, start_server

    settings = make_settings(
        database_url, tmp_path, max_cohort_rows=3, max_body_bytes=2000, workers=0
    )
    server = start_server(settings)
    try:
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as client:
            too_many = client.post("/cohorts", json=cohort_json(n=4))
            assert too_many.status_code == 413, too_many.text
            csv_rows = b"id;maths;concours\n" + b"".join(b"%d;1;2\n" % i for i in range(4))
            too_many_csv = client.post(
                "/cohorts",
                params={"name": "c"},
                content=csv_rows,
                headers={"Content-Type": "text/csv"},
            )
            assert too_many_csv.status_code == 413, too_many_csv.text
            too_big = client.post(
                "/cohorts",
                params={"name": "big"},
                content=b"x" * 5000,
                headers={"Content-Type": "text/csv"},
            )
            assert too_big.status_code == 413
            assert too_big.json()["code"] == "payload_too_large"

            def chunks() -> Any:
                for _ in range(10):
                    yield b"y" * 500

            chunked = client.post(
                "/cohorts",
                params={"name": "chunked"},
                content=chunks(),
                headers={"Content-Type": "text/csv"},
            )
            assert chunked.status_code == 413
            assert client.get("/cohorts").json()["count"] == 0
    finally:
        server.stop()
        server.database.engine.dispose()


def test_roles_and_tenancy(tenant: Tenant, other_tenant: Tenant) -> None:
    with tenant.client(Role.trainer) as trainer:
        cohort = trainer.post("/cohorts", json=cohort_json()).json()
    with tenant.client(Role.reader) as reader:
        assert reader.post("/cohorts", json=cohort_json(name="r")).status_code == 403
        assert reader.get(f"/cohorts/{cohort['id']}").status_code == 200
        assert reader.get(f"/cohorts/{cohort['id']}/students").status_code == 403
        assert reader.delete(f"/cohorts/{cohort['id']}").status_code == 403
    with other_tenant.client(Role.admin) as stranger:
        for method, path in [
            ("GET", f"/cohorts/{cohort['id']}"),
            ("GET", f"/cohorts/{cohort['id']}/students"),
            ("DELETE", f"/cohorts/{cohort['id']}"),
        ]:
            assert stranger.request(method, path).status_code == 404
        assert stranger.get("/cohorts").json()["count"] == 0


def test_delete_erases_students(trainer: httpx.Client) -> None:
    cohort = trainer.post("/cohorts", json=cohort_json()).json()
    assert trainer.delete(f"/cohorts/{cohort['id']}").status_code == 204
    assert trainer.get(f"/cohorts/{cohort['id']}").status_code == 404
    assert trainer.get(f"/cohorts/{cohort['id']}/students").status_code == 404
    assert trainer.delete(f"/cohorts/{cohort['id']}").status_code == 404


def test_bad_ids_in_path_are_422(trainer: httpx.Client) -> None:
    response = trainer.get("/cohorts/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "cohort_id"]
