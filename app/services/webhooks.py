"""Webhooks: an organisation's receivers, the events they are sent, and the durable queue
of deliveries that workers claim like jobs.

An event is enqueued by ``enqueue`` in the transaction of the change it tells of: a
rolled-back change sends nothing, a committed one is delivered at least once. Deliveries
follow the Standard Webhooks specification: ``webhook-id`` (the delivery's id, the same at
every attempt), ``webhook-timestamp`` and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of id.timestamp.body>``), signed by the ``standardwebhooks``
library. Payloads carry ids and figures, never grades, names or pupils' ids.
"""

import base64
import ipaddress
import random
import secrets
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook as Signer

from app.core.errors import InvalidInput
from app.db.base import utcnow
from app.db.models import DeliveryStatus, Webhook, WebhookDelivery
from app.db.paging import paginate
from app.schemas.webhooks import EVENTS

MAX_URL_LENGTH = 2000
SECRET_BYTES = 32
MAX_BACKOFF_SECONDS = 3600.0
# Hosts that name this machine whatever the resolver says.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class UrlRules:
    allow_http: bool
    allow_private: bool


# --- URL rules: checked when a webhook is created, the address again at each delivery ----


def refused_address(address: str, allow_private: bool) -> str | None:
    """Why a webhook may not be delivered to this IP address, or None if it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return "a multicast or unspecified address"
    local = ip.is_loopback or ip.is_link_local or ip.is_private
    if local or not ip.is_global:
        if allow_private and (local or not ip.is_reserved):
            return None
        if ip.is_reserved and not local:
            return "a reserved address"
        return "a loopback, link-local or private address (GRADECAST_WEBHOOK_ALLOW_PRIVATE)"
    return None


def check_url(url: str, rules: UrlRules) -> str:
    """The URL as stored, or InvalidInput naming ``url``: https (http when allowed), a
    host, no credentials, and no literal address or local name the rules refuse."""
    loc = ["body", "url"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"url: not a valid URL ({exc})", loc=loc) from None
    allowed = ("https", "http") if rules.allow_http else ("https",)
    if parts.scheme not in allowed:
        only = "http or https" if rules.allow_http else "https (GRADECAST_WEBHOOK_ALLOW_HTTP)"
        raise InvalidInput(f"url: the scheme must be {only}", loc=loc)
    host = parts.hostname
    if not host:
        raise InvalidInput("url: a host is required", loc=loc)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url: credentials in the URL are not accepted", loc=loc)
    if port == 0:
        raise InvalidInput("url: port 0 is not a port", loc=loc)
    why = _refused_host(host, rules.allow_private)
    if why is not None:
        raise InvalidInput(f"url: the host is {why}", loc=loc)
    return url


def _refused_host(host: str, allow_private: bool) -> str | None:
    try:
        return refused_address(host, allow_private)
    except ValueError:
        pass
    try:
        # The other spellings of an IPv4 address resolvers accept: 2130706433, 127.1, 0x7f.1
        return refused_address(socket.inet_ntoa(socket.inet_aton(host)), allow_private)
    except OSError:
        pass  # a name, resolved (and checked) at delivery time
    if not allow_private and (host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost")):
        return "a loopback name (GRADECAST_WEBHOOK_ALLOW_PRIVATE)"
    return None


# --- the webhooks of an organisation --------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_webhook(
    session: Session,
    organisation_id: uuid.UUID,
    url: str,
    events: Sequence[str],
    rules: UrlRules,
    key_id: uuid.UUID | None,
) -> Webhook:
    webhook = Webhook(
        organisation_id=organisation_id,
        url=check_url(url, rules),
        events=sorted(set(events)),
        secret=new_secret(),
        created_by=key_id,
    )
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session, organisation_id: uuid.UUID) -> list[Webhook]:
    return list(
        session.scalars(
            select(Webhook)
            .where(Webhook.organisation_id == organisation_id)
            .order_by(Webhook.created_at, Webhook.id)
        )
    )


def get_webhook(
    session: Session, organisation_id: uuid.UUID, webhook_id: uuid.UUID
) -> Webhook | None:
    return session.scalars(
        select(Webhook).where(Webhook.id == webhook_id, Webhook.organisation_id == organisation_id)
    ).one_or_none()


def delete_webhook(session: Session, webhook: Webhook) -> None:
    """The webhook and its deliveries; one being delivered right now is not retried."""
    session.delete(webhook)


def list_deliveries(
    session: Session, webhook: Webhook, *, limit: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    return paginate(
        session,
        query,
        WebhookDelivery.created_at.desc(),
        WebhookDelivery.id,
        limit=limit,
        offset=offset,
    )


# --- events ---------------------------------------------------------------------------


def enqueue(
    session: Session, organisation_id: uuid.UUID, event: str, payload: Mapping[str, Any]
) -> int:
    """Queue ``event`` for every webhook of the organisation that subscribed to it, in the
    caller's transaction; returns how many deliveries were queued. ``payload`` holds ids
    and figures only (JSON-serialisable: UUIDs and datetimes are written as strings)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = [
        hook
        for hook in session.scalars(
            select(Webhook).where(Webhook.organisation_id == organisation_id)
        )
        if event in hook.events
    ]
    if not hooks:
        return 0
    now = utcnow()
    body = orjson.dumps(
        {"type": event, "timestamp": now.isoformat(), "data": dict(payload)},
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    for hook in hooks:
        session.add(
            WebhookDelivery(
                webhook_id=hook.id,
                event=event,
                body=body,
                status=DeliveryStatus.pending,
                attempts=0,
                next_attempt_at=now,
            )
        )
    session.flush()
    return len(hooks)


# --- worker side: claim, sign, settle -------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """What a delivery thread needs once the claim is committed (no ORM object)."""

    id: uuid.UUID
    url: str
    secret: str
    body: str
    attempts: int


def claim_deliveries(
    session: Session, worker_id: str, lease_seconds: float, limit: int
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries: pending ones whose time has come, and ones
    whose worker died mid-delivery (lease run out; sent again with the same id).
    PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the writer's BEGIN IMMEDIATE serialises."""
    now = utcnow()
    due = or_(
        (WebhookDelivery.status == DeliveryStatus.pending)
        & (WebhookDelivery.next_attempt_at <= now),
        (WebhookDelivery.status == DeliveryStatus.delivering) & (WebhookDelivery.lease_until < now),
    )
    rows = session.execute(
        select(WebhookDelivery, Webhook.url, Webhook.secret)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(due)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    ).all()
    claimed = []
    for delivery, url, secret in rows:
        delivery.status = DeliveryStatus.delivering
        delivery.worker_id = worker_id
        delivery.lease_until = now + timedelta(seconds=lease_seconds)
        delivery.attempts += 1
        claimed.append(Claimed(delivery.id, url, secret, delivery.body, delivery.attempts))
    session.flush()
    return claimed


def signed_headers(delivery: Claimed, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (the timestamp is the attempt's)."""
    msg_id = str(delivery.id)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(delivery.secret).sign(msg_id, now, delivery.body),
    }


# The jitter's own generator: drawing from the random module's shared one, in the
# delivery thread, moved its state under whoever else uses it (Hypothesis noticed, in tests).
_JITTER = random.Random()


def backoff_seconds(attempts: int, base: float) -> float:
    """Exponential backoff with jitter: base·2^(attempts−1), capped at an hour, times a
    random factor in [0.5, 1)."""
    delay: float = min(base * 2.0 ** min(attempts - 1, 30), MAX_BACKOFF_SECONDS)
    return delay * (0.5 + _JITTER.random() / 2)


@dataclass(frozen=True)
class Outcome:
    """An attempt's result: ``status_code`` when the receiver answered, ``error`` (a short
    sentence, no body) when it did not or answered other than 2xx."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None


def settle_delivery(
    session: Session,
    delivery_id: uuid.UUID,
    worker_id: str,
    outcome: Outcome,
    *,
    backoff_base: float,
    retry_seconds: float,
) -> DeliveryStatus | None:
    """Record an attempt, if the claim is still this worker's: delivered, retried later,
    or failed for good once ``retry_seconds`` have passed since the event. Returns the new
    status, or None when the claim was lost (the delivery was deleted or taken over)."""
    delivery = session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.worker_id == worker_id,
            WebhookDelivery.status == DeliveryStatus.delivering,
        )
        .with_for_update()
    ).one_or_none()
    if delivery is None:
        return None
    now = utcnow()
    delivery.worker_id = None
    delivery.lease_until = None
    delivery.last_status_code = outcome.status_code
    delivery.last_error = None if outcome.error is None else outcome.error[:200]
    if outcome.delivered:
        delivery.status = DeliveryStatus.succeeded
        delivery.delivered_at = now
        return delivery.status
    retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, backoff_base))
    if retry_at - delivery.created_at > timedelta(seconds=retry_seconds):
        delivery.status = DeliveryStatus.failed
    else:
        delivery.status = DeliveryStatus.pending
        delivery.next_attempt_at = retry_at
    return delivery.status
