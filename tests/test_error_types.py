"""errors[] as a client reads it: `loc` ends at the field, `type` comes from the small
documented set, and an unknown key is named with the API name it most likely meant."""

import re
from typing import Any

import httpx
import pytest

from app.core.errors import INPUT_ERROR_TYPES, input_error_type
from app.db.models import Role
from tests.conftest import Tenant
from tests.test_cohorts import cohort_json
from tests.test_models import version_body
from tests.walkthrough import ROOT


@pytest.fixture
def trainer_with_model(tenant: Tenant) -> httpx.Client:
    client = tenant.client(Role.trainer)
    assert client.post("/models/concours/versions", json=version_body()).status_code == 201
    return client


def pupil(**cells: Any) -> dict[str, Any]:
    return {"maths": 13, "info": 14, "francais": 11, **cells}


def first_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    for item in body["errors"]:
        assert item["type"] in INPUT_ERROR_TYPES, body
    error: dict[str, Any] = body["errors"][0]
    return error


@pytest.mark.parametrize(
    ("cells", "loc", "kind"),
    [
        # A list where a grade goes: pydantic's union once put its member ("float") last.
        ({"maths": [1]}, ["body", "students", 0, "maths"], "wrong_type"),
        ({"francais": {"a": 1}}, ["body", "students", 0, "francais"], "wrong_type"),
        ({"info": True}, ["body", "students", 0, "info"], "wrong_type"),
        ({"info": 21}, ["body", "students", 0, "info"], "invalid_input"),
    ],
)
def test_a_cell_of_the_wrong_type_is_located_at_its_field(
    trainer_with_model: httpx.Client, cells: dict[str, Any], loc: list[Any], kind: str
) -> None:
    body = {"model": "concours", "students": [pupil(**cells)]}
    error = first_error(trainer_with_model.post("/predict", json=body))
    assert error["loc"] == loc
    assert error["type"] == kind


def test_a_cell_of_the_wrong_type_in_an_upload_is_located_at_its_field(
    trainer_with_model: httpx.Client,
) -> None:
    document = cohort_json()
    document["students"][2]["maths"] = [12]
    error = first_error(trainer_with_model.post("/cohorts", json=document))
    assert error["loc"] == ["body", "students", 2, "maths"]
    assert error["type"] == "wrong_type"


def test_an_accented_key_is_named_as_unknown_with_its_api_name(
    trainer_with_model: httpx.Client,
) -> None:
    body = {"model": "concours", "students": [{"maths": 13, "info": 14, "Français": 11}]}
    error = first_error(trainer_with_model.post("/predict", json=body))
    assert error["loc"] == ["body", "students", 0, "Français"]
    assert error["type"] == "unknown_field"
    assert "did you mean 'francais'" in error["msg"]


def test_an_unknown_column_in_an_upload_suggests_the_missing_one(
    trainer_with_model: httpx.Client,
) -> None:
    document = cohort_json()
    document["students"][1]["Maths"] = document["students"][1].pop("maths")
    error = first_error(trainer_with_model.post("/cohorts", json=document))
    assert error["loc"] == ["body", "students", 1, "Maths"]
    assert error["type"] == "unknown_field"
    assert "did you mean 'maths'" in error["msg"]


def test_a_missing_column_is_missing(trainer_with_model: httpx.Client) -> None:
    body = {"model": "concours", "students": [{"maths": 13, "info": 14}]}
    error = first_error(trainer_with_model.post("/predict", json=body))
    assert error == {
        "loc": ["body", "students", 0, "francais"],
        "msg": "students[0] has no value for 'francais'",
        "type": "missing",
    }


@pytest.mark.parametrize(
    ("path", "body", "loc", "kind", "hint"),
    [
        ("/predict", {"modle": "concours", "students": [pupil()]}, ["body", "model"], "missing",
         ""),
        ("/jobs", {"cohort_id": "{c}", "model": "m", "iteration": 5}, ["body", "iteration"],
         "unknown_field", "did you mean 'iterations'"),
        ("/jobs", {"cohort_id": "{c}", "model": "m", "algorithm": "gdd"}, ["body", "algorithm"],
         "not_allowed", ""),
        ("/jobs", {"cohort_id": "{c}", "model": "m", "epochs": 0}, ["body", "epochs"],
         "out_of_range", ""),
        ("/jobs", {"cohort_id": "{c}", "model": "m", "epochs": "five"}, ["body", "epochs"],
         "wrong_type", ""),
        ("/jobs", {"cohort_id": "not-a-uuid", "model": "m"}, ["body", "cohort_id"],
         "invalid_format", ""),
        ("/jobs", {"cohort_id": "{c}", "model": ".hidden"}, ["body", "model"],
         "invalid_format", ""),
        ("/jobs", {"model": "m"}, ["body", "cohort_id"], "missing", ""),
        ("/predict", {"model": "concours", "on_error": "ignore", "students": [pupil()]},
         ["body", "on_error"], "not_allowed", ""),
        ("/predict", {"model": "concours", "version": "1", "students": [pupil()]},
         ["body", "version"], "wrong_type", ""),
        ("/predict", {"model": "concours", "studens": [pupil()]}, ["body", "students"], "missing",
         ""),
    ],
)  # fmt: skip
def test_every_body_error_has_a_documented_type_at_its_field(
    trainer_with_model: httpx.Client,
    path: str,
    body: dict[str, Any],
    loc: list[Any],
    kind: str,
    hint: str,
) -> None:
    if body.get("cohort_id") == "{c}":
        cohort = trainer_with_model.post("/cohorts", json=cohort_json(name="errors"))
        body = {**body, "cohort_id": cohort.json()["id"]}
    response = trainer_with_model.post(path, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert all(item["type"] in INPUT_ERROR_TYPES for item in errors), errors
    match = [item for item in errors if item["loc"] == loc]
    assert match, errors
    assert match[0]["type"] == kind
    assert hint in match[0]["msg"]


def test_a_misspelt_top_level_field_suggests_the_right_one(
    trainer_with_model: httpx.Client,
) -> None:
    for path, body, field, meant in [
        ("/predict", {"modle": "concours", "students": [pupil()]}, "modle", "model"),
        ("/models/concours/versions", {**version_body(), "reasons": "x"}, "reasons", "reason"),
    ]:
        response = trainer_with_model.post(path, json=body)
        # The unknown field comes first, in `detail` too: it explains the missing one.
        error = first_error(response)
        assert error["loc"] == ["body", field]
        assert error["type"] == "unknown_field"
        assert f"did you mean {meant!r}" in response.json()["detail"]


def test_a_misspelt_query_parameter_suggests_the_right_one(
    trainer_with_model: httpx.Client,
) -> None:
    response = trainer_with_model.get("/cohorts", params={"limt": "5"})
    error = first_error(response)
    assert error["loc"] == ["query", "limt"]
    assert error["type"] == "unknown_field"
    assert "did you mean 'limit'" in error["msg"]


def test_the_activation_body_errors_are_typed(trainer_with_model: httpx.Client) -> None:
    response = trainer_with_model.put("/models/concours/active", json={"version": "x"})
    error = first_error(response)
    assert error["loc"] == ["body", "version"]
    assert error["type"] == "wrong_type"


@pytest.mark.parametrize(
    ("pydantic_type", "documented"),
    [
        ("missing", "missing"),
        ("extra_forbidden", "unknown_field"),
        ("int_type", "wrong_type"),
        ("int_parsing", "wrong_type"),
        ("float_type", "wrong_type"),
        ("literal_error", "not_allowed"),
        ("greater_than_equal", "out_of_range"),
        ("less_than_equal", "out_of_range"),
        ("too_short", "out_of_range"),
        ("string_too_long", "out_of_range"),
        ("string_pattern_mismatch", "invalid_format"),
        ("uuid_parsing", "invalid_format"),
        ("json_invalid", "invalid_input"),
        ("value_error", "invalid_input"),
    ],
)
def test_pydantic_types_map_to_the_documented_set(pydantic_type: str, documented: str) -> None:
    assert input_error_type(pydantic_type) == documented


def test_the_readme_documents_exactly_the_error_types() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Errors** all have one shape", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^- `([a-z_]+)`", section, flags=re.MULTILINE))
    assert documented == set(INPUT_ERROR_TYPES)
