"""Organisations and API keys."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.security import generate_key, hash_key
from app.db.base import utcnow
from app.db.models import ApiKey, Organisation, Role
from app.db.session import Database


def get_or_create_organisation(session: Session, name: str) -> Organisation:
    organisation = session.scalars(
        select(Organisation).where(Organisation.name == name)
    ).one_or_none()
    if organisation is None:
        organisation = Organisation(name=name)
        session.add(organisation)
        session.flush()
    return organisation


def issue_key(
    session: Session, organisation_id: uuid.UUID, name: str, role: Role, key: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    plain = key or generate_key()
    api_key = ApiKey(
        organisation_id=organisation_id, name=name, role=role, key_hash=hash_key(plain)
    )
    session.add(api_key)
    session.flush()
    return api_key, plain


def ensure_bootstrap_key(session: Session, plain: str, organisation_name: str = "default") -> bool:
    """Create ``plain`` as an admin key of ``organisation_name`` unless it exists.

    Returns True when it was created by this call.
    """
    digest = hash_key(plain)
    if session.scalars(select(ApiKey.id).where(ApiKey.key_hash == digest)).first() is not None:
        return False
    organisation = get_or_create_organisation(session, organisation_name)
    try:
        with session.begin_nested():
            issue_key(session, organisation.id, "bootstrap admin", Role.admin, key=plain)
    except IntegrityError:  # another process created it at the same moment
        return False
    return True


def has_any_key(session: Session) -> bool:
    return session.scalars(select(ApiKey.id).limit(1)).first() is not None


def list_keys(session: Session, organisation_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.organisation_id == organisation_id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
    )


def get_key(session: Session, organisation_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return session.scalars(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.organisation_id == organisation_id)
    ).one_or_none()


def revoke_key(api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()


def revoked_since(db: Database, since: datetime) -> list[uuid.UUID]:
    """The keys revoked at or after ``since`` (a handful: revocations are rare)."""
    with db.reads() as session:
        return list(session.scalars(select(ApiKey.id).where(ApiKey.revoked_at >= since)))
