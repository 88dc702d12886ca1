import uuid

from fastapi import APIRouter, Response, status

from app.api.deps import Admin, PrincipalDep, SessionDep, StateDep
from app.api.routing import Route
from app.core.errors import NotFound
from app.db.models import Organisation
from app.schemas.common import error_responses
from app.schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeysRead, WhoAmI
from app.services import audit
from app.services import keys as key_service

router = APIRouter(tags=["keys"], route_class=Route)


@router.get("/whoami", response_model=WhoAmI, responses=error_responses(401))
def whoami(principal: PrincipalDep, session: SessionDep) -> WhoAmI:
    """The organisation and role of the calling key."""
    organisation = session.get_one(Organisation, principal.organisation_id)
    return WhoAmI(
        key_id=principal.key_id,
        organisation_id=organisation.id,
        organisation=organisation.name,
        role=principal.role,
    )


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(401, 403, 422),
)
def create_api_key(body: ApiKeyCreate, principal: Admin, session: SessionDep) -> ApiKeyCreated:
    """Create a key in the caller's organisation. The key is in this response only."""
    api_key, plain = key_service.issue_key(session, principal.organisation_id, body.name, body.role)
    audit.record(
        session,
        principal.organisation_id,
        "key.created",
        key_id=principal.key_id,
        object=f"/api-keys/{api_key.id}",
        figures={"name": api_key.name, "role": api_key.role.value},
    )
    return ApiKeyCreated(
        id=api_key.id,
        name=api_key.name,
        role=api_key.role,
        created_at=api_key.created_at,
        revoked_at=None,
        key=plain,
    )


@router.get("/api-keys", response_model=ApiKeysRead, responses=error_responses(401, 403))
def list_api_keys(principal: Admin, session: SessionDep) -> ApiKeysRead:
    keys = key_service.list_keys(session, principal.organisation_id)
    return ApiKeysRead(data=[ApiKeyRead.model_validate(k) for k in keys], count=len(keys))


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def revoke_api_key(
    key_id: uuid.UUID, principal: Admin, session: SessionDep, state: StateDep
) -> Response:
    """Revoke a key. Other server processes stop accepting it within `auth_cache_seconds`."""
    api_key = key_service.get_key(session, principal.organisation_id, key_id)
    if api_key is None:
        raise NotFound("no such API key", loc=["path", "key_id"])
    key_service.revoke_key(api_key)
    audit.record(
        session,
        principal.organisation_id,
        "key.revoked",
        key_id=principal.key_id,
        object=f"/api-keys/{api_key.id}",
        figures={"name": api_key.name},
    )
    state.auth_cache.forget(api_key.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
