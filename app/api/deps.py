"""Request dependencies: the database session, the caller's key, role checks, paging
parameters, and the load-or-404 of each resource (`valid_<thing>`)."""

import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, BeforeValidator, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.state import AppState, Principal
from app.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from app.core.security import digests_match, hash_key
from app.db.models import ApiKey, Cohort, Evaluation, Job, Model, ModelVersion, Role, Webhook
from app.db.session import unit_of_work
from app.schemas.common import MODEL_NAME_DESCRIPTION, MODEL_NAME_PATTERN
from app.services import cohorts as cohort_service
from app.services import evaluations as evaluation_service
from app.services import jobs as job_service
from app.services import models as model_service
from app.services import webhooks as webhook_service

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ROLE_RANK = {Role.reader: 0, Role.trainer: 1, Role.admin: 2}

bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer gc_…`")


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.gradecast
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(request: Request, state: StateDep) -> Iterator[Session]:
    """The one place a request's work is committed (rolled back on any error).

    Requests that change something take SQLite's write lock up front (BEGIN IMMEDIATE),
    so their read-then-write can never fail with "database is locked" half-way.
    """
    factory = state.db.reads if request.method in _READ_METHODS else state.db.writes
    with unit_of_work(factory) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client that
# gets a 201/202/204 can rely on it (the default would commit after sending).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _lookup_key(state: AppState, digest: str) -> Principal | None:
    with state.db.reads() as session:
        key = session.scalars(
            select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        ).one_or_none()
        if key is None or not digests_match(key.key_hash, digest):
            return None
        return Principal(key_id=key.id, organisation_id=key.organisation_id, role=key.role)


QueryModel = TypeVar("QueryModel", bound=BaseModel)


def query_model(request: Request, model: type[QueryModel], default: QueryModel) -> QueryModel:
    """The query string as ``model``, for a route that reads it itself; ``default`` when there
    is none. Errors are FastAPI's own 422s, at ``["query", name]``."""
    if not request.scope.get("query_string"):
        return default
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        ) from None


def openapi_query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI's description of a query model's fields, as FastAPI writes its parameters."""
    properties = model.model_json_schema()["properties"]
    return [
        {
            "name": info.alias or name,
            "in": "query",
            "required": info.is_required(),
            "schema": properties[info.alias or name],
            "description": info.description,
        }
        for name, info in model.model_fields.items()
    ]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None else credentials.credentials


async def authenticate(request: Request, token: str | None) -> Principal:
    """The caller's key (a bearer token): from the cache (no database read) or looked up,
    then remembered on the request (the access line names its organisation). The one place
    a key is checked; a per-request check on the caller (a quota, a rate limit) goes after."""
    if not token:
        raise Unauthorized()
    state: AppState = request.app.state.gradecast
    digest = hash_key(token)
    principal = state.auth_cache.get(digest)
    if principal is None:
        verified_at = time.monotonic()
        principal = await run_in_threadpool(_lookup_key, state, digest)
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked")
        state.auth_cache.put(digest, principal, verified_at)
    request.state.principal = principal
    check_rate_limit(state, principal)
    return principal


def check_rate_limit(state: AppState, principal: Principal) -> None:
    """One request of the key's per-minute budget (README: Integrating), or a 429."""
    state.rate_limits.requests.take(principal.key_id, 1)


async def get_principal(request: Request, credentials: Credentials) -> Principal:
    return await authenticate(request, _token(credentials))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _with_role(principal: Principal, role: Role) -> Principal:
    if _ROLE_RANK[principal.role] < _ROLE_RANK[role]:
        raise Forbidden(f"this needs a key with the '{role.value}' role or higher")
    return principal


def require_role(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    # One dependency, not a chain of them: each level costs FastAPI some 10 µs a request.
    async def check(request: Request, credentials: Credentials) -> Principal:
        return _with_role(await authenticate(request, _token(credentials)), role)

    return check


# What a route that checks its caller itself (`principal_with_role`) tells OpenAPI.
BEARER_SECURITY: list[dict[str, list[str]]] = [{bearer_scheme.scheme_name: []}]


async def principal_with_role(request: Request, role: Role) -> Principal:
    """What the Reader, Trainer and Admin dependencies check, called by a route itself: the
    hot path of /predict takes no dependency (each costs FastAPI tens of µs a request)."""
    # bearer_scheme's reading (HTTPBearer, auto_error=False), without its pydantic object.
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return _with_role(
        await authenticate(request, token if scheme.lower() == "bearer" else None), role
    )


Reader = Annotated[Principal, Depends(require_role(Role.reader))]
Trainer = Annotated[Principal, Depends(require_role(Role.trainer))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]


def column_list(text: str | None, parameter: str) -> list[str] | None:
    """A query parameter naming columns, `Maths,Info,Français`, as a list (None: not given)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise InvalidInput(
            f"{parameter}: comma-separated column names, none empty", loc=["query", parameter]
        )
    return names


# --- paging -----------------------------------------------------------------------------

Limit = Annotated[int, Query(ge=1, le=1000)]


def _iso_only(value: object) -> object:
    """A moment as ISO 8601 text only: pydantic would also read `0.5` as a Unix time."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("an ISO 8601 date and time, e.g. 2026-09-01T08:00:00Z")
    return value


# A moment in a query string (UTC when it has no offset, as the routes read it).
Moment = Annotated[datetime, BeforeValidator(_iso_only)]
Offset = Annotated[int, Query(ge=0, le=10**9)]

# --- load or 404: another organisation's objects are a 404 too -----------------------------

ModelName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=MODEL_NAME_PATTERN,
        description=MODEL_NAME_DESCRIPTION,
        examples=["concours"],
    ),
]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


def valid_cohort(cohort_id: uuid.UUID, principal: Reader, session: SessionDep) -> Cohort:
    cohort = cohort_service.get_cohort(session, principal.organisation_id, cohort_id)
    if cohort is None:
        raise NotFound("no such cohort", loc=["path", "cohort_id"])
    return cohort


def valid_job(job_id: uuid.UUID, principal: Reader, session: SessionDep) -> Job:
    job = job_service.get_job(session, principal.organisation_id, job_id)
    if job is None:
        raise NotFound("no such job", loc=["path", "job_id"])
    return job


def valid_model(name: ModelName, principal: Reader, session: SessionDep) -> Model:
    model = model_service.get_model(session, principal.organisation_id, name)
    if model is None:
        raise NotFound(f"no model named {name!r}", loc=["path", "name"])
    return model


CohortDep = Annotated[Cohort, Depends(valid_cohort)]
JobDep = Annotated[Job, Depends(valid_job)]
ModelDep = Annotated[Model, Depends(valid_model)]


def valid_version(model: ModelDep, version: VersionNumber, session: SessionDep) -> ModelVersion:
    found = model_service.get_version(session, model, version)
    if found is None:
        raise NotFound(f"model {model.name!r} has no version {version}", loc=["path", "version"])
    return found


VersionDep = Annotated[ModelVersion, Depends(valid_version)]


def valid_evaluation(
    version: VersionDep, evaluation_id: uuid.UUID, session: SessionDep
) -> Evaluation:
    evaluation = evaluation_service.get_evaluation(session, version, evaluation_id)
    if evaluation is None:
        raise NotFound(
            f"version {version.version} has no such evaluation", loc=["path", "evaluation_id"]
        )
    return evaluation


EvaluationDep = Annotated[Evaluation, Depends(valid_evaluation)]


def valid_webhook(webhook_id: uuid.UUID, principal: Admin, session: SessionDep) -> Webhook:
    webhook = webhook_service.get_webhook(session, principal.organisation_id, webhook_id)
    if webhook is None:
        raise NotFound("no such webhook", loc=["path", "webhook_id"])
    return webhook


WebhookDep = Annotated[Webhook, Depends(valid_webhook)]
