"""API keys: 401 without or with a wrong key, 403 for a weak role, 404 across organisations."""

import httpx
import pytest
import sqlalchemy as sa

from app.db.models import Role
from tests.conftest import LiveServer, Tenant


def test_health_needs_no_key(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer gc_wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "gc_nobearer"},
    ],
)
def test_missing_or_wrong_key_is_401(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    response = anonymous.get("/cohorts", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"


def test_key_in_query_string_is_refused(tenant: Tenant, anonymous: httpx.Client) -> None:
    key = tenant.keys[Role.admin]
    for name in ("api_key", "access_token", "key", "token"):
        response = anonymous.get("/cohorts", params={name: key})
        assert response.status_code == 401
    # Even with a valid header, a key in the URL is a mistake worth refusing loudly.
    with tenant.client(Role.admin) as client:
        response = client.get("/cohorts", params={"api_key": key})
    assert response.status_code == 422
    assert key not in response.text


def test_whoami(tenant: Tenant) -> None:
    for role in Role:
        with tenant.client(role) as client:
            me = client.get("/whoami").json()
        assert me["role"] == role.value
        assert me["organisation"] == tenant.name


def test_admin_creates_lists_and_revokes_keys(admin: httpx.Client, anonymous: httpx.Client) -> None:
    created = admin.post("/api-keys", json={"name": "sis", "role": "reader"})
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("gc_")
    assert len(key) >= 40
    assert body["role"] == "reader"

    listed = admin.get("/api-keys").json()
    assert body["id"] in {k["id"] for k in listed["data"]}
    assert key not in admin.get("/api-keys").text

    headers = {"Authorization": f"Bearer {key}"}
    assert anonymous.get("/cohorts", headers=headers).status_code == 200
    assert admin.delete(f"/api-keys/{body['id']}").status_code == 204
    assert anonymous.get("/cohorts", headers=headers).status_code == 401


def test_keys_are_stored_only_as_hashes(tenant: Tenant, live_server: LiveServer) -> None:
    with live_server.database.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all()
    for key in tenant.keys.values():
        assert all(key not in value for value in stored)


@pytest.mark.parametrize("role", [Role.trainer, Role.reader])
def test_key_management_needs_admin(tenant: Tenant, role: Role) -> None:
    with tenant.client(role) as client:
        assert client.post("/api-keys", json={"name": "x", "role": "reader"}).status_code == 403
        assert client.get("/api-keys").status_code == 403


def test_create_key_validation(admin: httpx.Client) -> None:
    assert admin.post("/api-keys", json={"name": "x", "role": "owner"}).status_code == 422
    assert admin.post("/api-keys", json={"name": "", "role": "reader"}).status_code == 422
    response = admin.post("/api-keys", json={"name": "x", "role": "reader", "extra": 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "extra"]


def test_cannot_revoke_another_organisations_key(tenant: Tenant, other_tenant: Tenant) -> None:
    with other_tenant.client(Role.admin) as theirs:
        their_key = theirs.get("/api-keys").json()["data"][0]["id"]
    with tenant.client(Role.admin) as ours:
        assert ours.delete(f"/api-keys/{their_key}").status_code == 404
    with other_tenant.client(Role.admin) as theirs:
        assert theirs.get("/whoami").status_code == 200


def test_bootstrap_key_is_created_at_start(database_url: str, tmp_path: object) -> None:
    from tests.conftest import make_settings, start_server

    key = "gc_bootstrap_" + "x" * 32
    settings = make_settings(database_url, tmp_path, bootstrap_admin_key=key, workers=0)  # type: ignore[arg-type]
    server = start_server(settings)
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            me = c.get("/whoami").json()
        assert me["role"] == "admin"
        assert me["organisation"] == "default"
    finally:
        server.stop()
        server.database.engine.dispose()
