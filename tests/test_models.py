"""The models API through real HTTP: hand-set versions, activation, history, isolation."""

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.db.models import Role
from tests.conftest import Tenant

COURSE_THETA = [0, 0.33, 0.33, 0.33]


def version_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "features": ["maths", "info", "francais"],
        "target": "concours",
        "theta": COURSE_THETA,
        "grade_range": [0, 20],
        "activate": True,
        "residual_std": None,
    }
    body.update(overrides)
    return body


def register(client: httpx.Client, name: str = "concours", **overrides: Any) -> dict[str, Any]:
    response = client.post(f"/models/{name}/versions", json=version_body(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_register_hand_set_theta_and_read_it_back(trainer: httpx.Client) -> None:
    response = trainer.post("/models/concours/versions", json=version_body())
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "/models/concours/versions/1"
    version = response.json()
    assert version["version"] == 1
    assert version["active"] is True
    assert version["coefficients"] == {
        "intercept": 0,
        "weights": {"maths": 0.33, "info": 0.33, "francais": 0.33},
    }
    assert version["theta"] == COURSE_THETA
    assert version["features"] == ["maths", "info", "francais"]
    assert version["feature_labels"] == ["maths", "info", "francais"]
    assert version["target"] == "concours"
    assert version["grade_range"] == [0, 20]
    assert version["source"] == "manual"
    assert version["residual_std"] is None
    assert version["training_range"] is None
    assert version["cohort_id"] is None
    assert version["cohort_erased"] is False
    assert version["job_id"] is None

    assert trainer.get("/models/concours/versions/1").json() == version
    model = trainer.get("/models/concours").json()
    assert model["name"] == "concours"
    assert model["active_version"] == 1
    assert model["latest_version"] == 1
    listed = trainer.get("/models").json()
    assert listed["count"] == 1
    assert listed["data"] == [model]


def test_versions_are_numbered_and_listed_newest_first(trainer: httpx.Client) -> None:
    register(trainer)
    second = register(trainer, theta=[1, 0.3, 0.3, 0.3], activate=False)
    # A later version may use other features: /predict asks for the version's own.
    third = register(trainer, features=["maths", "info"], theta=[2, 0.5, 0.4], activate=False)
    assert (second["version"], third["version"]) == (2, 3)
    assert second["active"] is False

    versions = trainer.get("/models/concours/versions").json()
    assert versions["count"] == 3
    assert [v["version"] for v in versions["data"]] == [3, 2, 1]
    assert [v["active"] for v in versions["data"]] == [False, False, True]
    page = trainer.get("/models/concours/versions", params={"limit": 1, "offset": 1}).json()
    assert [v["version"] for v in page["data"]] == [2]
    assert trainer.get("/models/concours").json()["latest_version"] == 3


def test_activate_roll_back_and_history(tenant: Tenant, trainer: httpx.Client) -> None:
    register(trainer)
    register(trainer, theta=[1, 0.3, 0.3, 0.3], activate=False)

    promoted = trainer.put("/models/concours/active", json={"version": 2, "reason": "better"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["active_version"] == 2
    assert trainer.get("/models/concours/versions/2").json()["active"] is True
    assert trainer.get("/models/concours/versions/1").json()["active"] is False

    again = trainer.put("/models/concours/active", json={"version": 2})
    assert again.status_code == 200
    rolled_back = trainer.put("/models/concours/active", json={"version": 1})
    assert rolled_back.json()["active_version"] == 1

    history = trainer.get("/models/concours/activations").json()
    assert history["count"] == 3  # activating the active version again is not recorded
    moves = [(h["from_version"], h["to_version"], h["reason"]) for h in history["data"]]
    assert moves == [
        (2, 1, ""),
        (1, 2, "better"),
        (None, 1, "registered by hand with activate=true"),
    ]
    assert all(h["key_id"] is not None for h in history["data"])
    assert history["data"][0]["created_at"] >= history["data"][1]["created_at"]


def test_activating_an_unknown_version_is_404(trainer: httpx.Client) -> None:
    register(trainer)
    response = trainer.put("/models/concours/active", json={"version": 7})
    assert response.status_code == 404
    assert response.json()["errors"][0]["loc"] == ["body", "version"]
    assert trainer.get("/models/concours").json()["active_version"] == 1
    assert trainer.get("/models/concours/versions/7").status_code == 404
    assert trainer.put("/models/nothing/active", json={"version": 1}).status_code == 404


def test_a_model_registered_without_activation_has_no_active_version(
    trainer: httpx.Client,
) -> None:
    version = register(trainer, activate=False)
    assert version["active"] is False
    assert trainer.get("/models/concours").json()["active_version"] is None
    assert trainer.get("/models/concours/activations").json() == {"data": [], "count": 0}


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"theta": [0, 0.33, 0.33]}, ["body", "theta"]),
        ({"theta": []}, ["body", "theta"]),
        ({"features": ["maths", "info", "maths"]}, ["body", "features", 2]),
        ({"features": ["Maths", "info", "francais"]}, ["body", "features", 0]),
        ({"features": ["maths", "info", "français"]}, ["body", "features", 2]),
        ({"features": ["maths", "id", "francais"]}, ["body", "features", 1]),
        ({"features": []}, ["body", "features"]),
        ({"target": "maths"}, ["body", "target"]),
        ({"target": "Concours"}, ["body", "target"]),
        ({"grade_range": [20, 0]}, ["body", "grade_range"]),
        ({"residual_std": -1}, ["body", "residual_std"]),
        ({"feature_labels": ["Maths"]}, ["body", "feature_labels"]),
        ({"learning_rate": 0.1}, ["body", "learning_rate"]),
    ],
)
def test_invalid_versions_are_422_naming_the_field(
    trainer: httpx.Client, overrides: dict[str, Any], loc: list[Any]
) -> None:
    response = trainer.post("/models/concours/versions", json=version_body(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    assert trainer.get("/models/concours").status_code == 404


def test_non_finite_theta_is_422(trainer: httpx.Client) -> None:
    for literal in (b"NaN", b"Infinity"):
        body = b'{"features": ["maths"], "target": "concours", "theta": [0, ' + literal + b"]}"
        response = trainer.post(
            "/models/concours/versions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["body", "theta", 1]


@pytest.mark.parametrize("name", ["bad name", "é", "x" * 101, ".hidden", "a/b"])
def test_invalid_model_names_are_refused(trainer: httpx.Client, name: str) -> None:
    response = trainer.post(f"/models/{name}/versions", json=version_body())
    assert response.status_code in (404, 422), response.text
    if response.status_code == 422:
        assert response.json()["errors"][0]["loc"] == ["path", "name"]
    assert trainer.get("/models").json()["count"] == 0


def test_model_names_may_use_dots_dashes_and_underscores(trainer: httpx.Client) -> None:
    assert register(trainer, name="Concours_2021-v1.b")["model"] == "Concours_2021-v1.b"


def test_readers_read_but_cannot_register_or_activate(tenant: Tenant) -> None:
    with tenant.client(Role.trainer) as trainer, tenant.client(Role.reader) as reader:
        register(trainer)
        register(trainer, activate=False)
        assert reader.get("/models").json()["count"] == 1
        assert reader.get("/models/concours/versions/1").status_code == 200
        assert reader.get("/models/concours/activations").status_code == 200
        forbidden = reader.post("/models/concours/versions", json=version_body())
        assert forbidden.status_code == 403
        assert reader.put("/models/concours/active", json={"version": 2}).status_code == 403
        assert reader.get("/models/concours").json()["active_version"] == 1


def test_another_organisation_sees_nothing(
    tenant: Tenant, other_tenant: Tenant, trainer: httpx.Client
) -> None:
    register(trainer)
    register(trainer, activate=False)
    with other_tenant.client(Role.admin) as other:
        assert other.get("/models").json() == {"data": [], "count": 0}
        for path in (
            "/models/concours",
            "/models/concours/versions",
            "/models/concours/versions/1",
            "/models/concours/activations",
        ):
            assert other.get(path).status_code == 404, path
        assert other.put("/models/concours/active", json={"version": 2}).status_code == 404
        # The same name is free in their organisation: a model of their own, version 1.
        assert register(other)["version"] == 1
    assert trainer.get("/models/concours").json()["latest_version"] == 2


def test_no_key_is_401(anonymous: httpx.Client) -> None:
    assert anonymous.get("/models").status_code == 401
    assert anonymous.post("/models/concours/versions", json=version_body()).status_code == 401


def test_concurrent_registrations_get_distinct_versions(tenant: Tenant) -> None:
    def one(i: int) -> int:
        with tenant.client(Role.trainer) as client:
            return int(register(client, theta=[i, 0.3, 0.3, 0.3], activate=i % 2 == 0)["version"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = sorted(pool.map(one, range(16)))
    assert numbers == list(range(1, 17))
    with tenant.client(Role.reader) as reader:
        model = reader.get("/models/concours").json()
        assert model["latest_version"] == 16
        history = reader.get("/models/concours/activations").json()
        # Each activation starts from the version the previous one ended at.
        chain = [(h["from_version"], h["to_version"]) for h in reversed(history["data"])]
        assert chain[0][0] is None
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chain))
        assert chain[-1][1] == model["active_version"]
