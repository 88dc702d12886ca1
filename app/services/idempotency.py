"""Idempotent writes (an Idempotency-Key header, as in the IETF httpapi draft and Stripe):
the first answer to a key is stored in the transaction of the write itself, so a write and
its stored answer commit together or not at all; a retry gets the stored answer back.

Keys are per organisation and last IDEMPOTENCY_WINDOW. The stored answer is the original
answer's bytes, nothing more: the answers of the routes that take a key carry no grades and
no pupils' ids (a cohort upload answers with counts and per-column statistics).
"""

import hashlib
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.core.errors import Conflict, InvalidInput
from app.db.base import utcnow
from app.db.locks import try_lock_idempotency_key
from app.db.models import IdempotentAnswer
from app.services.retention import IDEMPOTENCY_WINDOW

HEADER = "Idempotency-Key"
LOC = ["header", HEADER]
# How long a retry waits for a first request with the same key before a 409.
WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.05


def fingerprint(method: str, path: str, query: str, content_type: str, body: bytes) -> str:
    """What makes two requests "the same": method, path, query string, type and body."""
    digest = hashlib.sha256()
    for part in (method, path, query, content_type):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    """A key this request holds, to store its answer under before the commit."""

    organisation_id: uuid.UUID
    key: str
    fingerprint: str


def claim(
    session: Session, organisation_id: uuid.UUID, key: str, print_: str
) -> IdempotentAnswer | Claim:
    """The stored answer of an earlier request with this key, or the key, held by this
    transaction until it ends. A request with the same key that is still running is waited
    for (WAIT_SECONDS, then 409); the same key with another request is a 422."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not try_lock_idempotency_key(session, organisation_id, key):
        if time.monotonic() > deadline:
            raise Conflict(
                f"a request with this {HEADER} is still being processed; retry later", loc=LOC
            )
        time.sleep(_POLL_SECONDS)
    stored = session.get(IdempotentAnswer, (organisation_id, key), populate_existing=True)
    if stored is not None and stored.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        session.delete(stored)
        session.flush()
        stored = None
    if stored is None:
        return Claim(organisation_id, key, print_)
    if stored.fingerprint != print_:
        raise InvalidInput(
            f"this {HEADER} was used with a different request (method, path, query or body) "
            "in the last 24 hours; use a new key for a new request",
            loc=LOC,
        )
    return stored


def store(
    session: Session,
    held: Claim,
    *,
    status_code: int,
    content_type: str | None,
    location: str | None,
    body: bytes,
) -> None:
    session.add(
        IdempotentAnswer(
            organisation_id=held.organisation_id,
            key=held.key,
            fingerprint=held.fingerprint,
            status_code=status_code,
            content_type=content_type,
            location=location,
            body=body,
        )
    )
    session.flush()
