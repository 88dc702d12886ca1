"""Every route of the OpenAPI schema, read at run time, against every kind of caller: no key,
a key of each role, and a key of another organisation on this organisation's real ids.

A route that is not in ROUTES fails the test: a new route has to be classified here."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.db.models import Role
from tests.conftest import Tenant
from tests.test_cohorts import cohort_json
from tests.test_models import version_body

# Routes anyone may call. /metrics is public unless GRADECAST_METRICS_TOKEN is set (then it
# wants that token, not an API key; tests/test_observability.py covers it).
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
}

RANK = {Role.reader: 0, Role.trainer: 1, Role.admin: 2}


@dataclass
class World:
    """One organisation's real resources, and a way to make fresh ones for routes that
    consume them (revoking a key, deleting a cohort)."""

    tenant: Tenant
    cohort_id: str
    job_id: str
    model: str
    version: int
    webhook_id: str
    evaluation_id: str

    def admin(self) -> httpx.Client:
        return self.tenant.client(Role.admin)

    def spare_key_id(self) -> str:
        with self.admin() as admin:
            response = admin.post("/api-keys", json={"name": "spare", "role": "reader"})
            assert response.status_code == 201, response.text
            key_id: str = response.json()["id"]
            return key_id

    def spare_student_id(self) -> str:
        """A pupil of a fresh cohort of this organisation, there to be erased."""
        pupil = f"s-{uuid.uuid4().hex[:12]}"
        with self.admin() as admin:
            students = cohort_json()["students"]
            students[0]["id"] = pupil
            name = f"spare-{uuid.uuid4().hex[:8]}"
            response = admin.post("/cohorts", json=cohort_json(name=name, students=students))
            assert response.status_code == 201, response.text
        return pupil

    def spare_webhook_id(self) -> str:
        with self.admin() as admin:
            response = admin.post("/webhooks", json=webhook_body())
            assert response.status_code == 201, response.text
            webhook_id: str = response.json()["id"]
            return webhook_id

    def spare_cohort_id(self) -> str:
        with self.admin() as admin:
            name = f"spare-{uuid.uuid4().hex[:8]}"
            response = admin.post("/cohorts", json=cohort_json(name=name))
            assert response.status_code == 201, response.text
            cohort_id: str = response.json()["id"]
            return cohort_id


Request = tuple[dict[str, str], dict[str, Any] | None]
Build = Callable[[World], Request]


def _ids(world: World) -> dict[str, str]:
    return {
        "cohort_id": world.cohort_id,
        "job_id": world.job_id,
        "name": world.model,
        "version": str(world.version),
        "student_id": "e1",
        "webhook_id": world.webhook_id,
        "evaluation_id": world.evaluation_id,
    }


def webhook_body() -> dict[str, Any]:
    # .invalid never resolves (RFC 2606): the shared server's worker delivers nowhere.
    return {"url": "https://sis.example.invalid/hook", "events": ["job.failed"]}


def _plain(world: World) -> Request:
    return _ids(world), None


def _with(body: Callable[[World], dict[str, Any]]) -> Build:
    return lambda world: (_ids(world), body(world))


def _revoke(world: World) -> Request:
    return {"key_id": world.spare_key_id()}, None


def _delete_cohort(world: World) -> Request:
    return {"cohort_id": world.spare_cohort_id()}, None


def _delete_webhook(world: World) -> Request:
    return {"webhook_id": world.spare_webhook_id()}, None


def _erase_student(world: World) -> Request:
    return {"student_id": world.spare_student_id()}, None


def _predict(world: World) -> dict[str, Any]:
    student = {"id": "n1", "maths": 13, "info": 14, "francais": 11}
    return {"model": world.model, "students": [student]}


def _infer(world: World) -> dict[str, Any]:
    grades = {"maths": 13, "info": 14, "francais": 11}
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [grade]}
            for name, grade in grades.items()
        ]
    }


def _leaderboard(world: World) -> Request:
    return {**_ids(world), "query": f"?cohort_id={world.cohort_id}"}, None


# (method, path) → the weakest role allowed, and how to build a valid request.
ROUTES: dict[tuple[str, str], tuple[Role, Build]] = {
    ("GET", "/whoami"): (Role.reader, _plain),
    ("GET", "/api-keys"): (Role.admin, _plain),
    ("POST", "/api-keys"): (Role.admin, _with(lambda w: {"name": "k", "role": "reader"})),
    ("DELETE", "/api-keys/{key_id}"): (Role.admin, _revoke),
    ("POST", "/cohorts"): (
        Role.trainer,
        _with(lambda w: cohort_json(name=f"c-{uuid.uuid4().hex[:8]}")),
    ),
    ("GET", "/cohorts"): (Role.reader, _plain),
    ("GET", "/cohorts/{cohort_id}"): (Role.reader, _plain),
    ("DELETE", "/cohorts/{cohort_id}"): (Role.trainer, _delete_cohort),
    ("GET", "/cohorts/{cohort_id}/students"): (Role.trainer, _plain),
    ("DELETE", "/students/{student_id}"): (Role.trainer, _erase_student),
    ("GET", "/models"): (Role.reader, _plain),
    ("GET", "/models/{name}"): (Role.reader, _plain),
    ("GET", "/models/{name}/versions"): (Role.reader, _plain),
    ("POST", "/models/{name}/versions"): (Role.trainer, _with(lambda w: version_body())),
    ("GET", "/models/{name}/versions/{version}"): (Role.reader, _plain),
    ("PUT", "/models/{name}/active"): (Role.trainer, _with(lambda w: {"version": w.version})),
    ("GET", "/models/{name}/activations"): (Role.reader, _plain),
    ("POST", "/models/{name}/versions/{version}/evaluations"): (
        Role.trainer,
        _with(lambda w: {"cohort_id": w.cohort_id}),
    ),
    ("GET", "/models/{name}/versions/{version}/evaluations"): (Role.reader, _plain),
    ("GET", "/models/{name}/versions/{version}/evaluations/{evaluation_id}"): (
        Role.reader,
        _plain,
    ),
    ("GET", "/models/{name}/evaluations"): (Role.reader, _leaderboard),
    ("GET", "/models/{name}/versions/{version}/card"): (Role.reader, _plain),
    ("POST", "/predict"): (Role.reader, _with(_predict)),
    ("GET", "/v2/models/{name}"): (Role.reader, _plain),
    ("GET", "/v2/models/{name}/versions/{version}"): (Role.reader, _plain),
    ("GET", "/v2/models/{name}/ready"): (Role.reader, _plain),
    ("GET", "/v2/models/{name}/versions/{version}/ready"): (Role.reader, _plain),
    ("POST", "/v2/models/{name}/infer"): (Role.reader, _with(_infer)),
    ("POST", "/v2/models/{name}/versions/{version}/infer"): (Role.reader, _with(_infer)),
    ("POST", "/jobs"): (
        Role.trainer,
        _with(lambda w: {"cohort_id": w.cohort_id, "model": "m2", "algorithm": "closed_form"}),
    ),
    ("GET", "/jobs"): (Role.reader, _plain),
    ("GET", "/jobs/{job_id}"): (Role.reader, _plain),
    ("POST", "/jobs/{job_id}/cancel"): (Role.trainer, _plain),
    ("GET", "/jobs/{job_id}/loss"): (Role.reader, _plain),
    ("GET", "/audit"): (Role.admin, _plain),
    ("POST", "/webhooks"): (Role.admin, _with(lambda w: webhook_body())),
    ("GET", "/webhooks"): (Role.admin, _plain),
    ("GET", "/webhooks/{webhook_id}"): (Role.admin, _plain),
    ("DELETE", "/webhooks/{webhook_id}"): (Role.admin, _delete_webhook),
    ("GET", "/webhooks/{webhook_id}/deliveries"): (Role.admin, _plain),
}

# Routes that name no resource of an organisation (lists, creations, /whoami): another
# organisation's key simply works on its own organisation there. POST /models/{name}/versions
# names a model, but in the caller's own namespace: it creates the stranger's own model.
NO_FOREIGN_IDS = {
    ("GET", "/whoami"),
    ("GET", "/api-keys"),
    ("POST", "/api-keys"),
    ("POST", "/cohorts"),
    ("GET", "/cohorts"),
    ("GET", "/models"),
    ("GET", "/jobs"),
    ("POST", "/models/{name}/versions"),
    ("GET", "/audit"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks"),
}


def schema_routes(client: httpx.Client) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False


@pytest.fixture
def world(tenant: Tenant) -> World:
    with tenant.client(Role.trainer) as trainer:
        cohort = trainer.post("/cohorts", json=cohort_json(name="matrix"))
        assert cohort.status_code == 201, cohort.text
        version = trainer.post("/models/concours/versions", json=version_body())
        assert version.status_code == 201, version.text
        job = trainer.post(
            "/jobs",
            json={"cohort_id": cohort.json()["id"], "model": "trained", "algorithm": "gd"},
        )
        assert job.status_code == 202, job.text
        evaluation = trainer.post(
            "/models/concours/versions/1/evaluations", json={"cohort_id": cohort.json()["id"]}
        )
        assert evaluation.status_code == 201, evaluation.text
    with tenant.client(Role.admin) as admin:
        webhook = admin.post("/webhooks", json=webhook_body())
        assert webhook.status_code == 201, webhook.text
    for response in (cohort, job, webhook, evaluation):
        assert is_uuid4(response.json()["id"]), response.json()["id"]
        assert response.headers["Location"].endswith(response.json()["id"])
    return World(
        tenant,
        cohort.json()["id"],
        job.json()["id"],
        "concours",
        1,
        webhook.json()["id"],
        evaluation.json()["id"],
    )


def call(client: httpx.Client, method: str, path: str, request: Request) -> httpx.Response:
    params, body = request
    return client.request(method, path.format(**params) + params.get("query", ""), json=body)


def test_every_route_is_classified(anonymous: httpx.Client) -> None:
    routes = set(schema_routes(anonymous))
    unclassified = routes - set(ROUTES) - PUBLIC
    assert not unclassified, f"classify these routes in ROUTES or PUBLIC: {sorted(unclassified)}"
    gone = (set(ROUTES) | PUBLIC) - routes
    assert not gone, f"these routes are no longer in the schema: {sorted(gone)}"


def test_without_a_key_every_route_but_the_public_ones_is_401(
    world: World, anonymous: httpx.Client
) -> None:
    for method, path in schema_routes(anonymous):
        request = (_ids(world) | {"key_id": str(uuid.uuid4())}, None)
        response = call(anonymous, method, path, request)
        if (method, path) in PUBLIC:
            assert response.status_code in (200, 503), (method, path, response.text)
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer", (method, path)
        assert response.json()["code"] == "unauthorized"
        # A wrong key is no better than none.
        wrong = {"Authorization": "Bearer gc_" + "0" * 43}
        params, body = request
        again = anonymous.request(method, path.format(**params), json=body, headers=wrong)
        assert again.status_code == 401, (method, path, again.text)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_each_role_is_allowed_or_403_as_documented(
    world: World, anonymous: httpx.Client, role: Role
) -> None:
    routes = [r for r in schema_routes(anonymous) if r not in PUBLIC]
    with world.tenant.client(role) as client:
        for method, path in routes:
            minimum, build = ROUTES[(method, path)]
            response = call(client, method, path, build(world))
            where = (role.value, method, path, response.text)
            if RANK[role] >= RANK[minimum]:
                # The job may have finished already: cancelling it is then a 409.
                finished = path.endswith("/cancel") and response.status_code == 409
                assert response.is_success or finished, where
            else:
                assert response.status_code == 403, where
                assert response.json()["code"] == "forbidden", where


def test_another_organisation_gets_404_on_this_organisations_ids(
    world: World, other_tenant: Tenant, anonymous: httpx.Client
) -> None:
    routes = [r for r in schema_routes(anonymous) if r not in PUBLIC | NO_FOREIGN_IDS]
    with other_tenant.client(Role.admin) as stranger:
        for method, path in routes:
            _, build = ROUTES[(method, path)]
            response = call(stranger, method, path, build(world))
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["code"] == "not_found", (method, path)
        # The ids in bodies too: this organisation's cohort for a job, its model for /predict.
        job = stranger.post("/jobs", json={"cohort_id": world.cohort_id, "model": "x"})
        assert job.status_code == 404, job.text
        assert job.json()["errors"][0]["loc"] == ["body", "cohort_id"]
        predicted = stranger.post("/predict", json=_predict(world))
        assert predicted.status_code == 404, predicted.text
    # And nothing of it leaked into the lists of the stranger's organisation.
    with other_tenant.client(Role.admin) as stranger:
        for listing in ("/cohorts", "/jobs", "/models", "/webhooks"):
            assert stranger.get(listing).json()["count"] == 0, listing
    with world.admin() as admin:
        assert admin.get(f"/cohorts/{world.cohort_id}").status_code == 200
        assert admin.get(f"/jobs/{world.job_id}").status_code == 200


def test_ids_in_urls_are_random_uuids(world: World) -> None:
    key_ids = [world.spare_key_id() for _ in range(3)]
    cohort_ids = [world.spare_cohort_id() for _ in range(3)]
    for ident in [*key_ids, *cohort_ids, world.cohort_id, world.job_id]:
        assert is_uuid4(ident), ident
    # Random, not sequential: no two share a prefix the way time-ordered ids do.
    assert len({i[:8] for i in [*key_ids, *cohort_ids]}) == 6
    with world.admin() as admin:
        whoami = admin.get("/whoami").json()
        assert is_uuid4(whoami["key_id"])
        assert is_uuid4(whoami["organisation_id"])
